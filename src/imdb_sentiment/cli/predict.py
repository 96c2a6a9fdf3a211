"""predict: label new reviews with a trained model.

    python -m imdb_sentiment.cli.predict "A wonderful film." "Two hours I will never get back."
    imdb-predict --file reviews.txt                  # one review per line
    imdb-predict --file reviews.parquet --column review --format jsonl --output out.jsonl
    imdb-predict --file reviews.csv --format parquet --output scores.parquet
    cat reviews.txt | imdb-predict --model rf --format csv

DistilBERT (the default, `models/distilbert`, or any folder `dvc artifacts get` fetched)
cuts a long review the way training did (`tokenize_config.json` beside the model) and runs
with `--backend auto` (torch on a GPU or on a CPU with bf16 units, else the faster here of
torch and the int8 ONNX copy), `torch` or `onnx-int8` (`inference.scorer`, as `evaluate`
and `score` run it). `--model rf` /
`--model linear` load the classical pipelines, which read the review's WordPiece tokens
beside its text: those come from the tokenizer of `model.name` in params.yaml, the one
`tokenize` used (`--tokenizer` points elsewhere). Every review is cleaned first as
`prepare` cleaned the training reviews.

Output: one row per review with its input position (`index`, from 1), `label`
(NEGATIVE/POSITIVE), `score` (the probability of that label) and `p_positive`; in CSV,
JSON lines and Parquet also the cleaned `review` and every other column of a CSV or
Parquet `--file` (an `id`, say; one named like an output column is written
`input_<name>`), so the scores join back to the input. An empty review, one that is not
valid UTF-8 or not text, or one longer than `predict.max_review_chars` (params.yaml), gets
one `error:` line on stderr and no row; the others are still scored and the exit status is
1. `--output` is written whole or not at all, and never over a folder, a device, a FIFO or
the `--file` being read; Parquet needs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.files import check_replaceable
from imdb_sentiment.core.labels import ID2LABEL
from imdb_sentiment.core.params import ModelParams, load_params, load_section, load_subset
from imdb_sentiment.core.paths import PARAMS_FILE
from imdb_sentiment.inference.scorer import BACKENDS, MODEL_CHOICES, check_model, load_scorer
from imdb_sentiment.text.cleaning import CleaningParams
from imdb_sentiment.text.reviews import (
    PredictParams,
    clean_reviews,
    format_rows,
    read_reviews,
)

log = logging.getLogger("imdb_sentiment.predict")


FORMATS = ("table", "jsonl", "csv", "parquet")


def result_rows(
    positions: Sequence[int], texts: Sequence[str], proba: np.ndarray
) -> list[dict[str, Any]]:
    rows = []
    for position, text, p_positive in zip(positions, texts, proba, strict=True):
        label = int(p_positive >= 0.5)
        rows.append(
            {
                "index": position + 1,
                "label": ID2LABEL[label],
                "score": round(float(p_positive if label else 1 - p_positive), 6),
                "p_positive": round(float(p_positive), 6),
                "review": text,
            }
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imdb-predict",
        description="Label IMDb-style reviews as POSITIVE or NEGATIVE with a trained model.",
    )
    parser.add_argument("reviews", nargs="*", help="reviews to label (default: read stdin)")
    parser.add_argument(
        "--file", help="a text file (one review per line), a .csv or .parquet file, or - (stdin)"
    )
    parser.add_argument("--column", default="text", help="the column of a CSV/Parquet file")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="distilbert")
    parser.add_argument("--model-dir", type=Path, help="default: models/<model>")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="distilbert: auto (bf16 torch where the CPU has bf16, else the faster here "
        "of torch and int8, measured once), torch or onnx-int8",
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", type=Path, help="write here (atomically) instead of stdout")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--tokenizer", help="rf/linear only: tokenizer for the tokens column (default model.name)"
    )
    return parser.parse_args(argv)


def check_output(output: Path | None, file: str | None) -> None:
    """Stop before any work on an --output that would destroy something: a folder (it
    would be replaced by the file), a device, FIFO or socket, or the input file itself."""
    if output is None:
        return
    check_replaceable(output, "--output")
    if output.is_dir():
        raise StageError(f"--output {output}: is a folder; name a file to write")
    if file in (None, "-") or not (output.exists() and Path(file).exists()):
        return
    if output.samefile(file):
        raise StageError(f"--output {output}: is the --file being read; name another file")


def write_output(text: str | bytes, output: Path | None) -> None:
    """Write `text` to stdout, or atomically to `output` (all of it, or nothing); bytes
    (Parquet) only to `output`."""
    if output is not None:
        try:
            with atomic_path(output) as tmp:
                if isinstance(text, bytes):
                    tmp.write_bytes(text)
                else:
                    tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StageError(f"--output {output}: cannot write ({exc.strerror or exc})") from exc
        return
    if sys.stdout is None:
        raise StageError("stdout is closed: pass --output FILE")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:  # a closed pipe (`| head`), a full disk
        # Point stdout at /dev/null, so the interpreter's own flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StageError(f"cannot write to stdout ({exc.strerror or exc})") from exc


def predict(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise StageError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.format == "parquet" and args.output is None:
        raise StageError("--format parquet writes a file: pass --output FILE")
    params = load_params() if PARAMS_FILE.exists() else {}
    cleaning = load_subset(params, "prepare", CleaningParams)
    limits = load_section(params, "predict", PredictParams)
    # Before reading stdin, so a wrong model folder does not wait for input first.
    model_dir = check_model(args.model, args.backend, args.model_dir)
    check_output(args.output, args.file)
    reviews = read_reviews(args.reviews, args.file, args.column)
    if not reviews.texts:
        raise StageError("no reviews given: pass them as arguments, with --file, or on stdin")
    positions, texts = clean_reviews(reviews, cleaning, limits.max_review_chars)
    rows: list[dict[str, Any]] = []
    if texts:
        tokenizer, tokenizer_param = args.tokenizer, "--tokenizer"
        if args.model != "distilbert" and tokenizer is None:
            tokenizer, tokenizer_param = (
                load_section(params, "model", ModelParams).name,
                "model.name",
            )
        scorer = load_scorer(
            args.model,
            args.backend,
            model_dir,
            batch_size=args.batch_size,
            tokenizer=tokenizer,
            tokenizer_param=tokenizer_param,
        )
        rows = result_rows(positions, texts, scorer.proba(texts))
    write_output(format_rows(rows, args.format, reviews.carried), args.output)
    skipped = len(reviews.texts) - len(texts)
    if skipped:
        empty = skipped - len(reviews.bad)
        unreadable = len(reviews.bad) - reviews.too_long
        kinds = [
            kind
            for kind, count in (
                ("empty", empty),
                ("unreadable", unreadable),
                ("too long", reviews.too_long),
            )
            if count
        ]
        raise StageError(
            f"{skipped} of {len(reviews.texts)} review(s) {' or '.join(kinds)} and not scored"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `imdb-predict` (and `python -m imdb_sentiment.cli.predict`), which
    the console script calls directly: so it wraps itself in run_stage (one `error:` line,
    exit status 1)."""
    args = parse_args(argv)
    run_stage(lambda: predict(args))


if __name__ == "__main__":
    main()
