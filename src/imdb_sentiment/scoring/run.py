"""`score` without its command line: check the input, make or resume the plan, start the Ray
pool over the units still to write, and sum up the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.hub import is_local_path
from imdb_sentiment.core.params import ModelParams, load_params, load_section, load_subset
from imdb_sentiment.core.paths import PARAMS_FILE
from imdb_sentiment.inference.auto_backend import choose_backend
from imdb_sentiment.inference.onnx_backend import ONNX_DIR
from imdb_sentiment.inference.scorer import TRANSFORMER, check_model, load_scorer, model_dir_for
from imdb_sentiment.scoring.cluster import ScoreParams, cluster_resources, connect, import_ray
from imdb_sentiment.scoring.plan import (
    check_schemas,
    hash_folder,
    list_input_files,
    make_plan,
    open_output,
    plan_digest,
    plan_units,
    remove_leftovers,
)
from imdb_sentiment.scoring.ray_pool import score_units, size_pool
from imdb_sentiment.scoring.units import ScoreSettings
from imdb_sentiment.text.cleaning import CleaningParams
from imdb_sentiment.text.reviews import PredictParams
from imdb_sentiment.transformer.loading import load_tokenizer

log = logging.getLogger("imdb_sentiment.score")

DEFAULT_ROWS_PER_FILE = 10_000


def absolute(name: str) -> str:
    """Workers may run in another folder: local paths travel absolute, hub ids as they are."""
    return str(Path(name).expanduser().resolve()) if is_local_path(name) else name


def check_scores_here(settings: ScoreSettings, tokenizer_param: str) -> None:
    """Load the model as every worker will, on this machine's CPU, and score one review:
    a folder that cannot do that stops here in one line naming it, not in every worker."""
    if settings.tokenizer is not None:  # the classical models' tokens column
        load_tokenizer(settings.tokenizer, param=tokenizer_param)
    try:
        scorer = load_scorer(
            settings.kind,
            settings.backend,
            Path(settings.model_dir),
            device="cpu",
            tokenizer=settings.tokenizer,
            tokenizer_param=tokenizer_param,
            threads=1,
            one_core=True,
        )
        scorer.proba(["A probe review: the model loads and scores."])
    except StageError:
        raise
    except Exception as exc:  # torch, ONNX Runtime and scikit-learn raise many types
        raise StageError(
            f"{settings.model_dir}: the model cannot score reviews "
            f"({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc


def score(args: argparse.Namespace) -> dict[str, float | int]:
    started = time.perf_counter()
    import_ray()  # before any work: one line if Ray is missing
    params = load_params() if PARAMS_FILE.exists() else {}
    prepare = load_subset(params, "prepare", CleaningParams)
    limits = load_section(params, "predict", PredictParams)
    connection = load_section(params, "score", ScoreParams)
    backend = args.backend
    if args.model == TRANSFORMER and backend == "auto":
        # Chosen here, once, for every worker (on this machine's CPU when it has no GPU).
        models_dir = args.models_dir.resolve()
        torch_dir, onnx_dir = models_dir / TRANSFORMER, models_dir / ONNX_DIR.name
        check_model(args.model, "torch", torch_dir)
        backend = choose_backend(torch_dir, onnx_dir, args.device)
    default_dir = model_dir_for(args.model, backend)
    model_dir = check_model(args.model, backend, (args.models_dir / default_dir.name).resolve())
    tokenizer = None
    if args.model != "distilbert":
        tokenizer = absolute(args.tokenizer or load_section(params, "model", ModelParams).name)
    settings = ScoreSettings(
        args.model,
        backend,
        str(model_dir),
        tokenizer,
        args.batch_size,
        args.device,
        prepare,
        limits.max_review_chars,
    )
    identity = {
        "model": args.model,
        "backend": backend,
        "model_dir": str(model_dir),
        "model_sha256": hash_folder(model_dir),
        "tokenizer": tokenizer,
        "prepare": {"clean_html": prepare.clean_html, "normalize": prepare.normalize_whitespace},
    }
    files = list_input_files(args.input)
    check_schemas(files)
    check_scores_here(settings, "--tokenizer" if args.tokenizer else "model.name")
    plan = make_plan(files, args.rows_per_file, identity)
    out_dir = args.output.expanduser().resolve()
    done = open_output(out_dir, plan)
    units = plan_units(plan)
    pending = [unit for unit in units if unit.index not in done]
    log.info("%d units of work, %d already written in %s", len(units), len(done), out_dir)

    rows = bad_rows = long_rows = written = 0
    nodes: set[str] = set()
    if pending:
        connect(args.address, connection.connect_timeout_s)
        cpus, gpus = cluster_resources()
        torch_model = args.model == TRANSFORMER and backend == "torch"
        use_gpu = torch_model and gpus > 0 and args.device != "cpu"
        pool = size_pool(cpus, gpus, use_gpu, args.workers)
        log.info("cluster: %g CPUs, %g GPUs; %s", cpus, gpus, pool)
        by_index = {unit.index: unit for unit in pending}
        summaries = score_units(pending, settings, out_dir, pool, plan_digest(plan))
        for summary in summaries:
            unit = by_index[summary["unit"]]
            rows += summary["rows"]
            bad_rows += summary["bad_rows"]
            long_rows += summary["long_rows"]
            written += 1
            nodes.add(summary["node"])
            if summary["bad_rows"]:
                first = [unit.start + i + 1 for i in json.loads(summary["bad_first"])]
                log.warning(
                    "%s: %d review(s) null, empty after cleaning or longer than %d characters "
                    "(predict.max_review_chars), not scored (rows %s%s)",
                    unit.path,
                    summary["bad_rows"],
                    limits.max_review_chars,
                    ", ".join(map(str, first)),
                    ", ..." if summary["bad_rows"] > len(first) else "",
                )
            log.info("wrote %s (%d/%d)", unit.file_name, written + len(done), len(units))
    remove_leftovers(out_dir)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "bad_rows": bad_rows,
        "long_rows": long_rows,
        "seconds": round(seconds, 3),
        "reviews_per_s": round(rows / seconds, 1) if seconds else 0.0,
        "workers": len(nodes),
        "files_written": written,
        "files_skipped": len(done),
    }
