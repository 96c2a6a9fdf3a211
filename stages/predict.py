"""predict: label new reviews with a trained model.

    python -m stages.predict "A wonderful film." "Two hours I will never get back."
    imdb-predict --file reviews.txt                  # one review per line
    imdb-predict --file reviews.parquet --column review --format jsonl
    cat reviews.txt | imdb-predict --model rf --format csv

DistilBERT (the default, `models/distilbert`) runs through a transformers
`pipeline("text-classification")` whose preprocessing cuts a long review the way training
did: `tokenize_config.json` beside the model gives `max_length`, `truncation` and
`head_tokens`, and `stages.tokenize.IdCutter` keeps the same tokens (the pipeline's own
truncation could only keep the head). `--model rf` / `--model linear` load the classical
pipelines (`models/rf`, `models/linear`), which read the review's WordPiece tokens beside
its text: those come from the tokenizer of `model.name` in params.yaml, the one `tokenize`
used for their training data (`--tokenizer` points elsewhere). Every review is cleaned
first as `prepare` cleaned the training reviews.

Output: one row per review with its input position (`index`, from 1), `label`
(NEGATIVE/POSITIVE), `score` (the probability of that label, as the pipeline gives it) and
`p_positive`. An empty review gets one `error:` line on stderr and no row; the others are
still scored and the exit status is 1. A missing model folder, an unreadable file or a
missing column stop with one `error:` line before anything is scored.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common import (
    ID2LABEL,
    MODELS_DIR,
    PARAMS_FILE,
    ModelParams,
    StageError,
    load_params,
    load_section,
    run_stage,
)
from stages.inference import length_order
from stages.prepare import PrepareParams, clean_text
from stages.tokenize import IdCutter, TokenizeParams, load_tokenizer, tokenize_split

log = logging.getLogger("imdb_sentiment.predict")

MODEL_CHOICES = ("distilbert", "rf", "linear")
FORMATS = ("table", "jsonl", "csv")
TOKENIZE_CONFIG_NAME = "tokenize_config.json"
TABLE_TEXT_CHARS = 60


def read_reviews(
    texts: Sequence[str], file: str | None, column: str, stdin: io.TextIOBase | None = None
) -> list[str]:
    """The reviews to label: `texts`, then those of `file` (a text file, one review per
    line; a .csv or .parquet file's `column`; `-` for stdin). With neither, stdin."""
    reviews = list(texts)
    if file is None and not reviews:
        file = "-"
    if file is None:
        return reviews
    if file == "-":
        stream = stdin if stdin is not None else sys.stdin
        return reviews + stream.read().splitlines()
    path = Path(file)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            return reviews + path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StageError(f"{file}: cannot read reviews ({reason})") from exc
    except Exception as exc:  # pyarrow and the csv parser raise many types for a bad file
        raise StageError(f"{file}: cannot read reviews ({type(exc).__name__}: {exc})") from exc
    if column not in frame.columns:
        raise StageError(f"{file}: no column {column!r}; it has {list(frame.columns)}")
    values = frame[column]
    return reviews + ["" if pd.isna(value) else str(value) for value in values]


def clean_reviews(reviews: Sequence[str], prepare: PrepareParams) -> tuple[list[int], list[str]]:
    """Clean every review as `prepare` did; report each empty one on stderr.
    Returns the positions (from 0) of the non-empty reviews and their cleaned text."""
    kept, cleaned = [], []
    for position, review in enumerate(reviews):
        text = clean_text(
            review, clean_html=prepare.clean_html, normalize_whitespace=prepare.normalize_whitespace
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
            f"{model_dir}: no such model folder (train it with `dvc repro` or fetch it with "
            "`dvc pull`)"
        )
    if not (model_dir / needed).exists():
        raise StageError(f"{model_dir}: {needed} is missing; is this a trained model folder?")


def read_cut_config(model_dir: Path) -> TokenizeParams:
    """How training cut the ids: `tokenize_config.json` beside the model."""
    path = model_dir / TOKENIZE_CONFIG_NAME
    if not path.exists():
        raise StageError(f"{path} is missing: the model folder must come from train_distilbert")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return TokenizeParams.model_validate(
            {key: raw[key] for key in TokenizeParams.model_fields if key in raw}
        )
    except (ValueError, TypeError) as exc:
        raise StageError(f"{path}: not a valid tokenize config ({exc})") from exc


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
    cut = read_cut_config(model_dir)
    transformers.logging.set_verbosity_error()
    try:
        classifier = transformers.pipeline(
            "text-classification",
            model=str(model_dir),
            tokenizer=str(model_dir),
            pipeline_class=cutting_pipeline_class(),
            device=0 if torch.cuda.is_available() else -1,
        )
    except (OSError, ValueError) as exc:
        raise StageError(f"{model_dir}: cannot load the model ({exc})") from exc
    classifier.cut = cut
    label2id = {name.upper(): idx for idx, name in classifier.model.config.id2label.items()}
    if label2id.get("POSITIVE") != 1:
        raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")
    # Longest first, so the pipeline's batches hold reviews of similar length (less padding).
    order = length_order([len(text) for text in texts])
    proba = np.empty(len(texts), dtype=np.float64)
    outputs = classifier([texts[i] for i in order], batch_size=batch_size, top_k=None)
    for index, scores in zip(order, outputs, strict=True):
        proba[index] = next(s["score"] for s in scores if s["label"].upper() == "POSITIVE")
    return proba


def classical_proba(model_dir: Path, texts: list[str], tokenizer_name: str) -> np.ndarray:
    """P(positive) of `texts` by the classical pipeline in `model_dir`."""
    from stages.classical import MODEL_FILE, load_classical_model
    from stages.classical import positive_proba as pipeline_proba

    check_model_dir(model_dir, MODEL_FILE)
    pipeline = load_classical_model(model_dir)
    tokenizer = load_tokenizer(tokenizer_name)
    # Whole-review tokens joined by spaces, exactly as `tokenize` writes them for training.
    tokens = tokenize_split(texts, tokenizer, TokenizeParams(), desc="tokens")["tokens"]
    frame = pd.DataFrame({"text": texts, "tokens": tokens})
    return np.asarray(pipeline_proba(pipeline, frame), dtype=np.float64)


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


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as an aligned table, JSON lines or CSV (the last two with the full text)."""
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=["index", "label", "score", "p_positive", "review"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    lines = [f"{'#':>5}  {'label':<8}  {'score':>6}  review"]
    for row in rows:
        text = row["review"]
        if len(text) > TABLE_TEXT_CHARS:
            text = text[: TABLE_TEXT_CHARS - 1] + "…"
        lines.append(f"{row['index']:>5}  {row['label']:<8}  {row['score']:>6.3f}  {text}")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--tokenizer", help="rf/linear only: tokenizer for the tokens column (default model.name)"
    )
    return parser.parse_args(argv)


def predict(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise StageError(f"--batch-size {args.batch_size}: must be at least 1")
    params = load_params() if PARAMS_FILE.exists() else {}
    prepare = load_section(params, "prepare", PrepareParams)
    model_dir = args.model_dir or MODELS_DIR / args.model
    # Before reading stdin, so a wrong model folder does not wait for input first.
    check_model_dir(model_dir, "config.json" if args.model == "distilbert" else "model.skops")
    reviews = read_reviews(args.reviews, args.file, args.column)
    if not reviews:
        raise StageError("no reviews given: pass them as arguments, with --file, or on stdin")
    positions, texts = clean_reviews(reviews, prepare)
    if texts:
        if args.model == "distilbert":
            proba = transformer_proba(model_dir, texts, args.batch_size)
        else:
            tokenizer_name = args.tokenizer or load_section(params, "model", ModelParams).name
            proba = classical_proba(model_dir, texts, tokenizer_name)
        sys.stdout.write(format_rows(result_rows(positions, texts, proba), args.format))
        sys.stdout.flush()
    skipped = len(reviews) - len(texts)
    if skipped:
        raise StageError(f"{skipped} of {len(reviews)} review(s) empty and not scored")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m stages.predict` and the `imdb-predict` console script, which
    calls it directly: so it wraps itself in run_stage (one `error:` line, exit status 1)."""
    args = parse_args(argv)
    run_stage(lambda: predict(args))


if __name__ == "__main__":
    main()
