"""predict: label new reviews with a trained model.

    python -m stages.predict "A wonderful film." "Two hours I will never get back."
    imdb-predict --file reviews.txt                  # one review per line
    imdb-predict --file reviews.parquet --column review --format jsonl --output out.jsonl
    cat reviews.txt | imdb-predict --model rf --format csv

DistilBERT (the default, `models/distilbert`, or any folder `dvc artifacts get` fetched)
runs through a transformers `pipeline("text-classification")` whose preprocessing cuts a
long review the way training did (`tokenize_config.json` beside the model). `--model rf` /
`--model linear` load the classical pipelines, which read the review's WordPiece tokens
beside its text: those come from the tokenizer of `model.name` in params.yaml, the one
`tokenize` used (`--tokenizer` points elsewhere). Every review is cleaned first as
`prepare` cleaned the training reviews.

Output: one row per review with its input position (`index`, from 1), `label`
(NEGATIVE/POSITIVE), `score` (the probability of that label) and `p_positive`. An empty
review, or one that is not valid UTF-8, gets one `error:` line on stderr and no row; the
others are still scored and the exit status is 1. `--output` is written whole or not at
all, and never over a folder or the `--file` being read.
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
import pandas as pd

from stages.atomic import atomic_path
from stages.backends import BACKENDS, distilbert_proba, model_dir_for
from stages.classical_store import MODEL_FILE, classical_positive_proba, load_classical_model
from stages.cleaning import CleaningParams, clean_text
from stages.cutting import (
    IdCutter,
    TokenizeParams,
    check_fits_model,
    read_cut_config,
    tokenize_texts,
)
from stages.errors import StageError, one_line, run_stage
from stages.hub import load_tokenizer, refuse_remote_code
from stages.inference import length_order
from stages.labels import ID2LABEL
from stages.params import ModelParams, load_params, load_section, load_subset
from stages.paths import PARAMS_FILE
from stages.review_io import Reviews, format_rows, read_reviews

log = logging.getLogger("imdb_sentiment.predict")

MODEL_CHOICES = ("distilbert", "rf", "linear")
FORMATS = ("table", "jsonl", "csv")


def clean_reviews(reviews: Reviews, cleaning: CleaningParams) -> tuple[list[int], list[str]]:
    """Clean every review as `prepare` did; report each bad or empty one on stderr.
    Returns the positions (from 0) of the reviews to score and their cleaned text."""
    kept, cleaned = [], []
    for position, review in enumerate(reviews.texts):
        if position in reviews.bad:
            print(
                f"error: review {position + 1}: {reviews.bad[position]}; not scored",
                file=sys.stderr,
            )
            continue
        text = clean_text(
            review,
            clean_html=cleaning.clean_html,
            normalize_whitespace=cleaning.normalize_whitespace,
        )
        if not text.strip():
            print(f"error: review {position + 1} is empty; not scored", file=sys.stderr)
            continue
        kept.append(position)
        cleaned.append(text)
    return kept, cleaned


def check_model_dir(model_dir: Path, needed: str) -> None:
    if not model_dir.is_dir():
        raise StageError(
            f"{model_dir}: no such model folder (train it with `dvc repro`, fetch it with "
            "`dvc pull` or `dvc artifacts get`)"
        )
    if not (model_dir / needed).exists():
        raise StageError(f"{model_dir}: {needed} is missing; is this a trained model folder?")


def cutting_pipeline_class() -> type:
    """A text-classification pipeline whose preprocessing cuts a review as training did."""
    from transformers import TextClassificationPipeline

    class CutLikeTrainingPipeline(TextClassificationPipeline):
        cut: TokenizeParams

        def preprocess(self, inputs: str, **tokenizer_kwargs: Any) -> dict[str, Any]:
            import torch

            if not hasattr(self, "_cutter"):
                self._cutter = IdCutter(self.tokenizer, self.cut)
            ids = self.tokenizer(inputs, add_special_tokens=False, verbose=False)["input_ids"]
            framed = torch.tensor([self._cutter(ids)], dtype=torch.long)
            return {"input_ids": framed, "attention_mask": torch.ones_like(framed)}

    return CutLikeTrainingPipeline


def transformer_proba(model_dir: Path, texts: list[str], batch_size: int) -> np.ndarray:
    """P(positive) of `texts` by the saved sequence classifier in `model_dir`."""
    import torch
    import transformers

    check_model_dir(model_dir, "config.json")
    refuse_remote_code(model_dir)
    cut = read_cut_config(model_dir)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        classifier = transformers.pipeline(
            "text-classification",
            model=str(model_dir),
            tokenizer=str(model_dir),
            pipeline_class=cutting_pipeline_class(),
            device=0 if torch.cuda.is_available() else -1,
            trust_remote_code=False,
        )
    except Exception as exc:  # transformers and safetensors raise many types
        detail = " ".join(str(exc).split())[:200]
        raise StageError(
            f"{model_dir}: cannot load the model ({type(exc).__name__}: {detail})"
        ) from exc
    check_fits_model(cut, classifier.model.config, str(model_dir / "tokenize_config.json"))
    vocab_size = getattr(classifier.model.config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(classifier.tokenizer) > vocab_size:
        raise StageError(
            f"{model_dir}: its tokenizer has {len(classifier.tokenizer)} tokens, more than "
            f"the model's {vocab_size}"
        )
    classifier.cut = cut
    label2id = {name.upper(): idx for idx, name in classifier.model.config.id2label.items()}
    if label2id.get("POSITIVE") != 1:
        raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")
    # Longest first, so the pipeline's batches hold reviews of similar length (less padding).
    order = length_order([len(text) for text in texts])
    proba = np.empty(len(texts), dtype=np.float64)
    try:
        outputs = classifier([texts[i] for i in order], batch_size=batch_size, top_k=None)
        for index, scores in zip(order, outputs, strict=True):
            proba[index] = next(s["score"] for s in scores if s["label"].upper() == "POSITIVE")
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:  # weights of a wrong shape
        raise StageError(
            f"{model_dir}: the model cannot score reviews ({type(exc).__name__}: "
            f"{one_line(exc, 200)})"
        ) from exc
    return proba


def classical_proba(
    model_dir: Path, texts: list[str], tokenizer_name: str, tokenizer_param: str = "model.name"
) -> np.ndarray:
    """P(positive) of `texts` by the classical pipeline in `model_dir`."""
    check_model_dir(model_dir, MODEL_FILE)
    pipeline = load_classical_model(model_dir)
    tokenizer = load_tokenizer(tokenizer_name, tokenizer_param)
    # Whole-review tokens joined by spaces, exactly as `tokenize` writes them for training.
    tokens = tokenize_texts(texts, tokenizer, TokenizeParams(), desc="tokens")["tokens"]
    frame = pd.DataFrame({"text": texts, "tokens": tokens})
    return classical_positive_proba(pipeline, frame, str(model_dir / MODEL_FILE))


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
        "--backend", choices=BACKENDS, default="torch", help="distilbert: torch or onnx-int8"
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
    would be replaced by the file) or the input file itself."""
    if output is None:
        return
    if output.is_dir():
        raise StageError(f"--output {output}: is a folder; name a file to write")
    if file in (None, "-") or not (output.exists() and Path(file).exists()):
        return
    if output.samefile(file):
        raise StageError(f"--output {output}: is the --file being read; name another file")


def write_output(text: str, output: Path | None) -> None:
    """Write `text` to stdout, or atomically to `output` (all of it, or nothing)."""
    if output is not None:
        try:
            with atomic_path(output) as tmp:
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
    params = load_params() if PARAMS_FILE.exists() else {}
    cleaning = load_subset(params, "prepare", CleaningParams)
    model_dir, needed = model_dir_for(args.model, args.backend, args.model_dir)
    # Before reading stdin, so a wrong model folder does not wait for input first.
    check_model_dir(model_dir, needed)
    check_output(args.output, args.file)
    reviews = read_reviews(args.reviews, args.file, args.column)
    if not reviews.texts:
        raise StageError("no reviews given: pass them as arguments, with --file, or on stdin")
    positions, texts = clean_reviews(reviews, cleaning)
    rows: list[dict[str, Any]] = []
    if texts:
        if args.model == "distilbert":
            proba = distilbert_proba(
                args.backend, model_dir, texts, args.batch_size, transformer_proba
            )
        else:
            if args.tokenizer is not None:
                proba = classical_proba(model_dir, texts, args.tokenizer, "--tokenizer")
            else:
                name = load_section(params, "model", ModelParams).name
                proba = classical_proba(model_dir, texts, name)
        rows = result_rows(positions, texts, proba)
    write_output(format_rows(rows, args.format), args.output)
    skipped = len(reviews.texts) - len(texts)
    if skipped:
        empty = skipped - len(reviews.bad)
        kinds = (["empty"] if empty else []) + (["unreadable"] if reviews.bad else [])
        raise StageError(
            f"{skipped} of {len(reviews.texts)} review(s) {' or '.join(kinds)} and not scored"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m stages.predict` and the `imdb-predict` console script, which
    calls it directly: so it wraps itself in run_stage (one `error:` line, exit status 1)."""
    args = parse_args(argv)
    run_stage(lambda: predict(args))


if __name__ == "__main__":
    main()
