"""Checkpoints of `train_distilbert`: where they may go, when to resume from them, and
removing them, and nothing else, once the run is done.

The folder (`train_distilbert.output_dir`) lies outside the stage's outs, so `dvc repro`
keeps it and a killed run resumes from its last complete checkpoint. A marker file written
when the stage creates the folder holds a fingerprint of the params, data and base model:
a run with other settings starts over instead of resuming. Each checkpoint gets a stamp
of that fingerprint when it is saved, and is resumed from only when its stamp and its
`trainer_state.json` fit this run (its step that of its name, steps and epochs within the
run's); one that does not is set aside (renamed `set-aside-checkpoint-N`) with a warning.
The stage deletes only what it can recognise as its own: `checkpoint-N` folders inside a
folder that holds its marker.
It refuses, before training, a folder that is the repository or holds it, one of the
pipeline's outs (or inside or around one), or an existing non-empty folder without its
marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_sentiment.core.atomic import write_json
from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.files import read_regular

log = logging.getLogger("imdb_sentiment.checkpoints")

PARAM = "train_distilbert.output_dir"
MARKER_FILE = "imdb_sentiment_checkpoints.json"
MARKER_OWNER = "imdb-sentiment train_distilbert"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
# What a checkpoint must hold to be resumed from; the Trainer writes trainer_state.json
# last, then the stage its stamp.
STAMP_FILE = "imdb_sentiment_run.json"
CHECKPOINT_FILES = (
    "model.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "trainer_state.json",
    STAMP_FILE,
)
SET_ASIDE_PREFIX = "set-aside-"


@dataclass(frozen=True)
class RunLimits:
    """What a checkpoint of this run can have reached: at most `max_steps` optimizer steps
    (an upper bound: every batch a step) and `epochs` epochs."""

    max_steps: int
    epochs: float


def run_limits(train_rows: int, batch_per_step: int, epochs: float) -> RunLimits:
    """The limits of a run over `train_rows` reviews, `batch_per_step` per step at least
    (the batch per device times the processes), for `epochs` epochs."""
    steps_per_epoch = math.ceil(train_rows / batch_per_step)
    return RunLimits(max(1, steps_per_epoch * math.ceil(epochs)), epochs)


def pipeline_outs(root: Path = Path(".")) -> list[Path]:
    """Every out of the pipeline, as DVC reads dvc.yaml (none where there is no dvc.yaml)."""
    if not (root / "dvc.yaml").is_file():
        return []
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root), uninitialized=True) as repo:
            return [Path(out.def_path) for stage in repo.index.stages for out in stage.outs]
    except DvcException as exc:
        raise StageError(f"dvc.yaml: cannot read the pipeline's outs ({one_line(exc)})") from exc


def _related(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output_dir(output_dir: Path, protected: Iterable[Path] = ()) -> None:
    """Refuse, in one line, a checkpoint folder the stage could not safely clear."""
    root = Path.cwd().resolve()
    folder = (root / output_dir).resolve()
    named = f"{PARAM} = {str(output_dir)!r}"
    if folder == root or folder in root.parents:
        raise StageError(
            f"{named} is the repository or a folder above it; name a folder of its own"
        )
    for kept in (root / ".git", root / ".dvc", *(root / p for p in protected)):
        if _related(folder, kept.resolve()):
            raise StageError(
                f"{named} overlaps {kept.relative_to(root)}, which the project keeps; "
                "name a folder of its own, such as checkpoints/distilbert"
            )
    if folder.exists() and not folder.is_dir():
        raise StageError(f"{named} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER_FILE).is_file():
        raise StageError(
            f"{named} holds files this stage did not write; empty it or name another folder"
        )


def _hash_files(digest: Any, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)


def run_fingerprint(settings: Mapping[str, Any], data_dir: Path, model_dir: Path | None) -> str:
    """A hash of everything a checkpoint depends on: `settings` (params, process count,
    model name), the training data and a local base model's files."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    _hash_files(digest, data_dir)
    if model_dir is not None and model_dir.is_dir():
        _hash_files(digest, model_dir)
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(read_regular(path, limit=100_000_000))


def _is_complete(checkpoint: Path) -> bool:
    """Whether `checkpoint` was written to the end: every file there, and the last two,
    trainer_state.json and the stamp, whole (a kill can cut those writes short too)."""
    if not all((checkpoint / name).exists() for name in CHECKPOINT_FILES):
        return False
    try:
        _read_json(checkpoint / "trainer_state.json")
        _read_json(checkpoint / STAMP_FILE)
    except (OSError, ValueError):
        return False
    return True


def checkpoint_problem(
    checkpoint: Path, step: int, fingerprint: str, limits: RunLimits | None
) -> str | None:
    """Why a complete checkpoint cannot be this run's, or None when it fits: its stamp is of
    this run, its trainer_state.json's global_step is `step` (its name's) and within the
    run's steps, its epoch within the run's epochs."""
    stamp = _read_json(checkpoint / STAMP_FILE)
    if not isinstance(stamp, dict) or stamp.get("fingerprint") != fingerprint:
        return "its stamp is not of this run (other params, data or model)"
    state = _read_json(checkpoint / "trainer_state.json")
    if not isinstance(state, dict):
        return "trainer_state.json is not a JSON object"
    global_step, epoch = state.get("global_step"), state.get("epoch")
    if type(global_step) is not int or global_step != step:
        return f"trainer_state.json says global_step {global_step!r}, its name step {step}"
    if limits is None:
        return None
    if not 0 < global_step <= limits.max_steps:
        return f"global_step {global_step} is outside this run's 1 to {limits.max_steps}"
    if type(epoch) not in (int, float) or not 0 <= epoch <= limits.epochs + 1e-6:
        return f"epoch {epoch!r} is outside this run's 0 to {limits.epochs:g}"
    return None


def _set_aside(checkpoint: Path, reason: str) -> None:
    """Rename a checkpoint that does not fit this run out of the Trainer's `checkpoint-*`
    names (so that nothing resumes from it or rotates it away); delete nothing."""
    target = checkpoint.with_name(SET_ASIDE_PREFIX + checkpoint.name)
    count = 1
    while target.exists() or target.is_symlink():
        count += 1
        target = checkpoint.with_name(f"{SET_ASIDE_PREFIX}{checkpoint.name}-{count}")
    checkpoint.rename(target)
    log.warning("%s: %s; set aside as %s, not resumed from", checkpoint, reason, target.name)


def stamp_callback(fingerprint: str) -> Any:
    """A Trainer callback that stamps each checkpoint with the run's fingerprint once the
    Trainer has saved it (main process only)."""
    from transformers import TrainerCallback

    class StampCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if checkpoint.is_dir():
                    write_json(checkpoint / STAMP_FILE, {"fingerprint": fingerprint})

    return StampCheckpoints()


def own_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """The `checkpoint-N` folders in `output_dir`, by step."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir() and not path.is_symlink():
            found.append((int(match.group(1)), path))
    return sorted(found)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoints in `output_dir` that were written to the end, oldest first."""
    return [path for _, path in own_checkpoints(output_dir) if _is_complete(path)]


def resumable_checkpoints(
    output_dir: Path, fingerprint: str, limits: RunLimits | None, is_main: bool
) -> list[Path]:
    """The complete checkpoints that fit this run, oldest first; the main process sets
    each other complete one aside (:func:`checkpoint_problem`)."""
    fitting = []
    for step, path in own_checkpoints(output_dir):
        if not _is_complete(path):
            continue
        problem = checkpoint_problem(path, step, fingerprint, limits)
        if problem is None:
            fitting.append(path)
        elif is_main:
            _set_aside(path, problem)
    return fitting


def _stored_fingerprint(output_dir: Path) -> str | None:
    try:
        marker = _read_json(output_dir / MARKER_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != MARKER_OWNER:
        return None
    return marker.get("fingerprint")


def _remove_own_checkpoints(output_dir: Path) -> None:
    for _, path in own_checkpoints(output_dir):
        shutil.rmtree(path)


def prepare_checkpoints(
    output_dir: Path, fingerprint: str, is_main: bool, limits: RunLimits | None = None
) -> Path | None:
    """The checkpoint to resume from, if one was left by a run with the same fingerprint
    and fits this run's `limits` (:func:`resumable_checkpoints`).

    Checkpoints of another run (other params or data) are removed, never resumed. Only the
    main process changes the folder; every process reaches the same answer.
    """
    stored = _stored_fingerprint(output_dir)
    if stored == fingerprint:
        checkpoints = resumable_checkpoints(output_dir, fingerprint, limits, is_main)
        return checkpoints[-1] if checkpoints else None
    if is_main:
        if stored is not None:
            log.info("%s holds checkpoints of other params or data: starting over", output_dir)
            _remove_own_checkpoints(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            output_dir / MARKER_FILE, {"written_by": MARKER_OWNER, "fingerprint": fingerprint}
        )
    return None


def remove_checkpoints(output_dir: Path) -> None:
    """After a finished run: remove its checkpoints and marker, then the folder if that
    leaves it empty. Anything else in it stays."""
    if _stored_fingerprint(output_dir) is None:
        return
    _remove_own_checkpoints(output_dir)
    (output_dir / MARKER_FILE).unlink(missing_ok=True)
    try:
        output_dir.rmdir()
    except OSError:
        log.info("%s kept: it holds files this stage did not write", output_dir)
