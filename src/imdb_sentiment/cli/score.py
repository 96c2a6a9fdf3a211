"""`imdb-score`: label a Parquet corpus of any size with a trained model, on Ray Data.

    imdb-score reviews/ --model linear --output scores/
    imdb-score 'crawl/*.parquet' --model distilbert --output scores/ --address head:6379
    imdb-score reviews/ --model distilbert --backend onnx-int8 --output scores/

INPUT is a Parquet file, a folder of them or a glob, with a `text` column; every other
column (ids, dates, ...) is kept. DIR receives a Parquet dataset, one `part-NNNNNN.parquet`
per unit of work (a row range of one input file), with the kept columns, `label` (0/1)
and `score` (P(positive), float64). Input columns named `label` or `score` are kept as
`input_label` / `input_score`.

Each review is cleaned as `prepare` cleaned the training reviews and, for DistilBERT, cut
as `tokenize` cut them (the model folder's `tokenize_config.json`), with the same functions
`predict` and `evaluate` use. A review that is null, empty after cleaning or longer than
`predict.max_review_chars` (params.yaml) is not scored: it is counted, its file and rows
named on stderr, and the run goes on.

The model is loaded and scores one review here first: a folder that cannot is one line.
The run connects to `--address` (else RAY_ADDRESS, once it answers within
`score.connect_timeout_s`; else starts Ray on this machine, on loopback), scores
with one actor per CPU (per GPU for DistilBERT on a GPU cluster) and streams: memory stays
flat whatever the input's size. Each part file is written under a temporary name and
renamed; `DIR/_score_plan.json` records the input and settings, so a killed run started
again with the same command checks the parts already there, writes the missing or
damaged ones and ends with the same files.
The last line on stdout is a JSON summary: rows (input rows handled by this run), bad_rows,
long_rows (of them, too long), seconds, reviews_per_s, workers (Ray nodes that scored),
files_written, files_skipped.
Ray is the `scale` extra: pip install 'imdb-sentiment[scale]'.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.inference.scorer import BACKENDS, MODEL_CHOICES
from imdb_sentiment.scoring.run import DEFAULT_ROWS_PER_FILE, score


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imdb-score",
        description="Score a Parquet corpus of any size with a trained model, on Ray Data.",
    )
    parser.add_argument("input", help="a Parquet file, a folder of them, or a glob (quoted)")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="distilbert")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="distilbert: auto (bf16 torch where the CPU has bf16, else the faster here "
        "of torch and int8, measured once), torch or onnx-int8",
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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m imdb_sentiment.cli.score` and the `imdb-score` console script."""
    args = parse_args(argv)

    def run() -> None:
        check_args(args)
        summary = score(args)
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()

    run_stage(run)


if __name__ == "__main__":
    main()
