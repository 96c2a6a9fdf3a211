"""The Ray Data mechanics of `score`: sizing the actor pool, and the pipeline.

    units (one row each) -> scoring actors (read, score, write one unit) -> a summary row

The units stream through a fixed pool of actors (a class-based `map_batches` UDF with
`ActorPoolStrategy`), so each worker loads the model once. An actor reads its unit's rows
from the input file itself (only the row groups that hold them), scores them and writes
the unit's part file, so a unit never leaves the process that scores it: no review passes
through the object store or the driver, which holds only the plan and one summary row per
unit, and a unit's scores do not depend on which actor got it.

Why the reads and writes are not Ray tasks of their own: tasks need CPUs that the actors
do not hold, and each one runs in a worker process that Ray keeps only while CPUs are free.
With actors booking a fraction of every core (so that tasks can run at all), Ray counts no
whole CPU free and ends each task's worker once it idles: on nodes of one or two cores
every read and every write started a fresh Python process (seconds each), which took most
of the run. Inside the actors, the only thing that books CPUs is the actor pool itself,
sized to fit the cluster, so nothing waits on a CPU that an actor holds, on 2 cores or 200.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.scoring.cluster import WORKER_LOGS, import_ray
from imdb_sentiment.scoring.plan import Unit, read_unit, write_unit
from imdb_sentiment.scoring.units import score_table, too_long, unit_scorer

BAD_ROWS_LISTED = 5
# The project's own error line in a worker's traceback, and terminal colour codes in Ray's.
STAGE_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?StageError: (.+)$", re.M)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Every actor is up before the first unit is handed out (so all of them get work from the
# start), and a pool the cluster cannot hold fails after this long instead of waiting on.
ACTOR_START_TIMEOUT_S = 900


@dataclass(frozen=True)
class Pool:
    workers: int
    actor_cpus: float
    actor_gpus: int


def size_pool(cluster_cpus: float, cluster_gpus: float, use_gpu: bool, workers: int | None) -> Pool:
    """How many scoring actors, and what each asks for, on a cluster of `cluster_cpus` CPUs
    (and `cluster_gpus` GPUs when `use_gpu`): one per CPU (per GPU) unless `workers` says.

    An actor books a whole CPU, or 1/k of one when there are k times more actors than
    CPUs: a fraction that divides a core, so the actors fit on any mix of whole-core nodes
    and none waits forever for a slot."""
    if cluster_cpus < 1:
        raise StageError(f"the Ray cluster has {cluster_cpus:g} CPUs: score needs at least 1")
    if use_gpu:
        workers = workers or int(cluster_gpus)
        if workers > cluster_gpus:
            raise StageError(f"--workers {workers}: the cluster has {int(cluster_gpus)} GPUs")
    else:
        workers = workers or int(cluster_cpus)
    per_cpu = math.ceil(workers / int(cluster_cpus))
    return Pool(workers, round(1 / per_cpu, 4), 1 if use_gpu else 0)


class UnitScorer:
    """Scoring actor: loads the model once, then reads, scores and writes whole units."""

    def __init__(self, settings: Any, out_dir: str, digest: str) -> None:
        import ray

        self.settings = settings
        self.out_dir = Path(out_dir)
        self.digest = digest
        self.proba = unit_scorer(settings)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: pa.Table) -> pa.Table:

        summaries = []
        for spec in batch.to_pylist():
            unit = Unit(spec["index"], spec["path"], spec["start"], spec["stop"])
            rows = read_unit(unit)
            scores = score_table(rows, self.settings, self.proba)
            bad = np.flatnonzero(scores.column("score").is_null().to_numpy(zero_copy_only=False))
            if len(bad):
                scores = scores.filter(scores.column("score").is_valid())
            write_unit(self.out_dir, unit, scores, self.digest)
            summaries.append(
                {
                    "unit": unit.index,
                    "rows": unit.rows,
                    "bad_rows": len(bad),
                    "long_rows": int(too_long(rows, self.settings.max_review_chars).sum()),
                    "bad_first": json.dumps(bad[:BAD_ROWS_LISTED].tolist()),
                    "node": self.node,
                }
            )
        return pa.Table.from_pylist(summaries)


def worker_failure(exc: BaseException) -> str:
    """One line for what ended a scoring worker: the project's own error line when one
    caused it (Ray passes on the worker's traceback as text), else the last line Ray kept."""
    chain, error = [], exc
    while error is not None and error not in chain:
        chain.append(error)
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    text = ANSI_ESCAPE.sub("", "\n".join(str(error) for error in chain))
    ours = STAGE_ERROR_LINE.findall(text)
    if ours:
        return one_line(ours[-1], 300)
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {one_line(lines[-1] if lines else '', 300)}"


def score_units(
    pending: list[Unit], settings: Any, out_dir: Path, pool: Pool, digest: str
) -> Iterator[dict[str, Any]]:
    """Run the pipeline over `pending` on the connected cluster; yield each unit's summary
    as its file is written (streamed: nothing else comes back to the driver). A worker
    that cannot start or dies ends the run in one line naming the model folder."""
    ray = import_ray()
    # Ray Data logs a failed worker's whole traceback on the driver; the worker's own log
    # keeps it, and the run ends in one line (below).
    logging.getLogger("ray.data.exceptions").setLevel(logging.CRITICAL)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    specs = [{"index": u.index, "path": u.path, "start": u.start, "stop": u.stop} for u in pending]
    resources: dict[str, Any] = {"num_cpus": pool.actor_cpus}
    if pool.actor_gpus:
        resources["num_gpus"] = pool.actor_gpus
    dataset = ray.data.from_items(specs, override_num_blocks=len(specs)).map_batches(
        UnitScorer,
        fn_constructor_args=(settings, str(out_dir), digest),
        # One unit per call: a unit is the grain of work, of retry and of resume.
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool.workers, max_tasks_in_flight_per_actor=2),
        **resources,
    )
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield from batch.to_pylist()
    except ray.exceptions.GetTimeoutError as exc:
        raise StageError(
            f"the cluster did not start {pool.workers} scoring actors of {pool.actor_cpus:g} "
            f"CPU{f' and {pool.actor_gpus} GPU' if pool.actor_gpus else ''} within "
            f"{ACTOR_START_TIMEOUT_S} s: lower --workers or add nodes"
        ) from exc
    except ray.exceptions.RayError as exc:
        raise StageError(
            f"a scoring worker of {settings.model_dir} failed: {worker_failure(exc)} "
            f"({WORKER_LOGS})"
        ) from exc
