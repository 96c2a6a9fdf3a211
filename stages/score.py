"""score: label a Parquet corpus of any size with a trained model, on Ray Data.

    python -m stages.score reviews/ --model linear --output scores/
    imdb-score 'crawl/*.parquet' --model distilbert --output scores/ --address head:6379
    imdb-score reviews/ --model distilbert --backend onnx-int8 --output scores/

INPUT is a Parquet file, a folder of them or a glob, with a `text` column; every other
column (ids, dates, ...) is kept. DIR receives a Parquet dataset, one `part-NNNNNN.parquet`
per unit of work (a row range of one input file), with the kept columns, `label` (0/1)
and `score` (P(positive), float64). Input columns named `label` or `score` are kept as
`input_label` / `input_score`.

Each review is cleaned as `prepare` cleaned the training reviews and, for DistilBERT, cut
as `tokenize` cut them (the model folder's `tokenize_config.json`), with the same functions
`predict` and `evaluate` use. DistilBERT runs with torch (bf16 autocast where the hardware
has bf16) or, with `--backend onnx-int8`, as the int8 ONNX copy in models/distilbert-onnx.
A review that is null or empty after cleaning is not scored: it is counted, its file and
rows named on stderr, and the run goes on.

The run connects to `--address` (else RAY_ADDRESS, else starts Ray on this machine), scores
with one actor per CPU (per GPU for DistilBERT on a GPU cluster) and streams: memory stays
flat whatever the input's size. Each part file is written under a temporary name and
renamed; `DIR/_score_plan.json` records the input and settings, so a killed run started
again with the same command writes only the missing parts and ends with the same files.
The last line on stdout is a JSON summary: rows (input rows handled by this run), bad_rows,
seconds, reviews_per_s, workers (Ray nodes that scored), files_written, files_skipped.
Ray is the `scale` extra: pip install 'imdb-sentiment[scale]'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from stages.backends import BACKENDS, model_dir_for
from stages.classical import pipeline_positive_proba
from stages.classical_store import MODEL_FILE, load_classical_model
from stages.cleaning import CleaningParams, clean_text
from stages.cutting import TokenizeParams, read_cut_config, tokenize_texts
from stages.errors import StageError, run_stage
from stages.hub import is_local_path, load_classifier, load_tokenizer
from stages.inference import pick_device, predict_logits
from stages.metrics import positive_proba
from stages.onnx_inference import onnx_scorer
from stages.params import ModelParams, load_params, load_section, load_subset
from stages.paths import MODELS_DIR, PARAMS_FILE
from stages.predict import MODEL_CHOICES, check_model_dir
from stages.score_plan import (
    TEXT_COLUMN,
    check_schemas,
    hash_folder,
    id_columns,
    list_input_files,
    make_plan,
    open_output,
    output_name,
    plan_units,
    remove_leftovers,
)
from stages.score_ray import cluster_resources, connect, import_ray, score_units, size_pool

log = logging.getLogger("imdb_sentiment.score")

DEFAULT_ROWS_PER_FILE = 10_000
Proba = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ScoreSettings:
    """What a scoring worker needs (sent to every actor; paths absolute)."""

    kind: str
    backend: str
    model_dir: str
    tokenizer: str | None
    batch_size: int
    device: str
    prepare: CleaningParams


def load_scorer(settings: ScoreSettings) -> Proba:
    """Load the model once; return a function from cleaned reviews to P(positive), which
    computes what `predict` computes (same tokenizer, cut, model and probabilities)."""
    model_dir = Path(settings.model_dir)
    if settings.backend == "onnx-int8":
        # One thread a session: the pool runs one actor per CPU.
        onnx_proba = onnx_scorer(model_dir, threads=1)
        return lambda texts: onnx_proba(texts, settings.batch_size)
    if settings.kind == "distilbert":
        check_model_dir(model_dir, "config.json")
        cut = read_cut_config(model_dir)
        tokenizer = load_tokenizer(str(model_dir), param=None)
        model = load_classifier(str(model_dir), param=None).eval()
        label2id = {name.upper(): idx for idx, name in model.config.id2label.items()}
        if label2id.get("POSITIVE") != 1:
            raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")
        device = pick_device(settings.device)

        def transformer(texts: list[str]) -> np.ndarray:
            ids = tokenize_texts(texts, tokenizer, cut)["input_ids"]
            logits = predict_logits(
                model,
                ids,
                pad_token_id=tokenizer.pad_token_id,
                batch_size=settings.batch_size,
                device=device,
            )
            return positive_proba(logits)

        return transformer

    check_model_dir(model_dir, MODEL_FILE)
    pipeline = load_classical_model(model_dir)
    # One core per actor, and the forest then adds its trees up in one order: the same
    # scores on every run, which a resumed run needs to write the same files.
    pipeline.set_params(**{key: 1 for key in pipeline.get_params() if key.endswith("n_jobs")})
    tokenizer = load_tokenizer(settings.tokenizer)

    def classical(texts: list[str]) -> np.ndarray:
        # Whole-review tokens beside the text, as `tokenize` wrote them for training.
        tokens = tokenize_texts(texts, tokenizer, TokenizeParams(), desc="tokens")["tokens"]
        frame = pd.DataFrame({"text": texts, "tokens": tokens})
        return np.asarray(pipeline_positive_proba(pipeline, frame), dtype=np.float64)

    return classical


def score_table(table: pa.Table, settings: ScoreSettings, proba: Proba) -> pa.Table:
    """The input rows' kept columns plus `label` and `score`; both null where the text is
    null or empty after cleaning."""
    prepare = settings.prepare
    cleaned = [
        ""
        if text is None
        else clean_text(
            text, clean_html=prepare.clean_html, normalize_whitespace=prepare.normalize_whitespace
        )
        for text in table.column(TEXT_COLUMN).to_pylist()
    ]
    good = [i for i, text in enumerate(cleaned) if text.strip()]
    scores = np.full(len(cleaned), np.nan)
    if good:
        scores[good] = proba([cleaned[i] for i in good])
    bad = np.ones(len(cleaned), dtype=bool)
    bad[good] = False
    kept = table.select(id_columns(table.schema))
    kept = kept.rename_columns([output_name(name) for name in kept.column_names])
    labels = pa.array((scores >= 0.5).astype(np.int64), mask=bad)
    return kept.append_column("label", labels).append_column("score", pa.array(scores, mask=bad))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imdb-score",
        description="Score a Parquet corpus of any size with a trained model, on Ray Data.",
    )
    parser.add_argument("input", help="a Parquet file, a folder of them, or a glob (quoted)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="distilbert")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="distilbert: torch or onnx-int8"
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for the scores")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--address", help="Ray cluster (default: RAY_ADDRESS, else local)")
    parser.add_argument("--workers", type=int, help="scoring actors (default: per CPU/GPU)")
    parser.add_argument("--batch-size", type=int, default=64, help="DistilBERT reviews a pass")
    parser.add_argument(
        "--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE, help="rows per output file"
    )
    parser.add_argument("--tokenizer", help="rf/linear: tokens column (default model.name)")
    parser.add_argument("--device", default="auto", help="DistilBERT: auto, cpu or cuda")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name in ("workers", "batch_size", "rows_per_file"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise StageError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
        raise StageError(f"--device {args.device}: must be auto, cpu or cuda")


def absolute(name: str) -> str:
    """Workers may run in another folder: local paths travel absolute, hub ids as they are."""
    return str(Path(name).expanduser().resolve()) if is_local_path(name) else name


def score(args: argparse.Namespace) -> dict[str, float | int]:
    started = time.perf_counter()
    check_args(args)
    import_ray()  # before any work: one line if Ray is missing
    params = load_params() if PARAMS_FILE.exists() else {}
    prepare = load_subset(params, "prepare", CleaningParams)
    default_dir, needed = model_dir_for(args.model, args.backend, None)
    model_dir = (args.models_dir / default_dir.name).resolve()
    check_model_dir(model_dir, needed)
    tokenizer = None
    if args.model != "distilbert":
        tokenizer = absolute(args.tokenizer or load_section(params, "model", ModelParams).name)
    settings = ScoreSettings(
        args.model, args.backend, str(model_dir), tokenizer, args.batch_size, args.device, prepare
    )
    identity = {
        "model": args.model,
        "backend": args.backend,
        "model_dir": str(model_dir),
        "model_sha256": hash_folder(model_dir),
        "tokenizer": tokenizer,
        "prepare": {"clean_html": prepare.clean_html, "normalize": prepare.normalize_whitespace},
    }
    files = list_input_files(args.input)
    check_schemas(files)
    if tokenizer is not None:
        # Here, in one line, rather than as a traceback from every worker's start-up.
        load_tokenizer(tokenizer, param="--tokenizer" if args.tokenizer else "model.name")
    plan = make_plan(files, args.rows_per_file, identity)
    out_dir = args.output.expanduser().resolve()
    done = open_output(out_dir, plan)
    units = plan_units(plan)
    pending = [unit for unit in units if unit.index not in done]
    log.info("%d units of work, %d already written in %s", len(units), len(done), out_dir)

    rows = bad_rows = written = 0
    nodes: set[str] = set()
    if pending:
        connect(args.address)
        cpus, gpus = cluster_resources()
        torch_model = args.model == "distilbert" and args.backend == "torch"
        use_gpu = torch_model and gpus > 0 and args.device != "cpu"
        pool = size_pool(cpus, gpus, use_gpu, args.workers)
        log.info("cluster: %g CPUs, %g GPUs; %s", cpus, gpus, pool)
        by_index = {unit.index: unit for unit in pending}
        summaries = score_units(pending, settings, out_dir, pool)
        for summary in summaries:
            unit = by_index[summary["unit"]]
            rows += summary["rows"]
            bad_rows += summary["bad_rows"]
            written += 1
            nodes.add(summary["node"])
            if summary["bad_rows"]:
                first = [unit.start + i + 1 for i in json.loads(summary["bad_first"])]
                log.warning(
                    "%s: %d review(s) null or empty after cleaning, not scored (rows %s%s)",
                    unit.path,
                    summary["bad_rows"],
                    ", ".join(map(str, first)),
                    ", ..." if summary["bad_rows"] > len(first) else "",
                )
            log.info("wrote %s (%d/%d)", unit.file_name, written + len(done), len(units))
    remove_leftovers(out_dir)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "bad_rows": bad_rows,
        "seconds": round(seconds, 3),
        "reviews_per_s": round(rows / seconds, 1) if seconds else 0.0,
        "workers": len(nodes),
        "files_written": written,
        "files_skipped": len(done),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m stages.score` and the `imdb-score` console script."""
    args = parse_args(argv)

    def run() -> None:
        summary = score(args)
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()

    run_stage(run)


if __name__ == "__main__":
    main()
