"""evaluate: score every trained model once on the test split.

Reads the test split (`data/tokenized/frame/test.parquet` for the classical models,
`data/tokenized/hf` for DistilBERT, whose ids were cut as in training) and the three models,
DistilBERT run by each of `evaluate.backends` (torch, and its int8 ONNX copy), and writes:
- `metrics/test/{model}.json`: accuracy, precision, recall, F1, ROC AUC, log loss (for
  DistilBERT the mean cross-entropy, the reference's eval loss) and size_mb (the model
  folder on disk), one file per model so that `dvc metrics show` has a row for each;
- `timings/evaluate.json`: per model, runtime_s and reviews_per_s (scoring only, loading
  excluded), kept out of the metrics so that a metrics diff shows quality alone;
- `plots/evaluate/{model}/`: the data of the plots declared in dvc.yaml: confusion.csv
  (one row per test review: actual, predicted), roc.csv and precision_recall.csv
  (downsampled to `evaluate.curve_points`), accuracy_by_length.csv (per bucket of
  `n_tokens`);
- `metrics/errors.md`: the most confidently wrong test reviews of each model.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from stages.atomic import atomic_outputs, json_text
from stages.classical import pipeline_positive_proba
from stages.classical_store import load_classical_model
from stages.cutting import check_fits_model, read_cut_config
from stages.errors import StageError, run_stage
from stages.evaluation_plots import write_plot_data
from stages.hub import load_classifier, load_tokenizer
from stages.inference import pick_device, predict_logits
from stages.labels import ID2LABEL
from stages.metrics import classification_metrics, positive_proba
from stages.onnx_inference import BACKEND_ENTRIES, ONNX_DIR, int8_size_mb, score_test_split
from stages.params import Params, load_params, load_section
from stages.paths import (
    METRICS_DIR,
    MODELS_DIR,
    TEST_METRICS_DIR,
    TIMINGS_DIR,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
)

log = logging.getLogger("imdb_sentiment.evaluate")

CLASSICAL_MODELS = ("rf", "linear")
TRANSFORMER_MODEL = "distilbert"
INT8_MODEL = BACKEND_ENTRIES["onnx-int8"]
MODEL_NAMES = (*CLASSICAL_MODELS, TRANSFORMER_MODEL, INT8_MODEL)
TIMINGS_FILE = TIMINGS_DIR / "evaluate.json"
ERRORS_FILE = METRICS_DIR / "errors.md"
PLOTS_DIR = Path("plots/evaluate")


class EvaluateParams(Params):
    # DistilBERT reviews per batch: the largest that fits (halved on out-of-memory).
    batch_size: int = Field(64, ge=1)
    # bf16 autocast where the GPU or CPU does bf16 in hardware (stages.precision).
    bf16: bool = True
    # auto (the GPU when there is one), cpu, cuda, cuda:1, ...
    device: str = Field("auto", min_length=1)
    # How DistilBERT is scored: each backend is one entry of the metrics.
    backends: list[Literal["torch", "onnx-int8"]] = Field(
        default_factory=lambda: ["torch", "onnx-int8"], min_length=1
    )
    # Points kept of the ROC and precision-recall curves.
    curve_points: int = Field(200, ge=10, le=10000)
    # Upper edges (exclusive, in whole-review tokens) of the review-length buckets.
    length_buckets: list[int] = Field(default_factory=lambda: [128, 256, 512, 1024])
    # Most confidently wrong reviews listed per model, and characters kept of each.
    n_errors: int = Field(10, ge=0, le=1000)
    error_chars: int = Field(300, ge=20)

    @field_validator("length_buckets")
    @classmethod
    def _increasing(cls, edges: list[int]) -> list[int]:
        if (
            not edges
            or edges[0] <= 0
            or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
        ):
            raise ValueError("must be positive and strictly increasing")
        return edges

    @field_validator("backends")
    @classmethod
    def _distinct(cls, backends: list[str]) -> list[str]:
        if len(set(backends)) != len(backends):
            raise ValueError("lists a backend twice")
        return backends


def model_size_mb(model_dir: Path) -> float:
    """Size on disk of every file in `model_dir`, in MB (10^6 bytes)."""
    total = sum(path.stat().st_size for path in model_dir.rglob("*") if path.is_file())
    return round(total / 1e6, 3)


def read_test_frame() -> pd.DataFrame:
    path = TOKENIZED_FRAME_DIR / "test.parquet"
    if not path.exists():
        raise StageError(f"{path} is missing: run `dvc repro tokenize` first")
    frame = pd.read_parquet(path, columns=["text", "label", "tokens", "n_tokens"])
    if frame.empty:
        raise StageError(f"{path} holds no reviews")
    return frame


def score_classical(name: str, frame: pd.DataFrame) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/{name}, and the seconds scoring took."""
    pipeline = load_classical_model(MODELS_DIR / name)
    start = time.perf_counter()
    proba = pipeline_positive_proba(pipeline, frame)
    return proba, time.perf_counter() - start


def score_transformer(
    config: EvaluateParams, device: Any, expected_labels: np.ndarray
) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/distilbert, and the seconds scoring took."""
    import datasets

    model_dir = MODELS_DIR / TRANSFORMER_MODEL
    if not (model_dir / "config.json").exists():
        raise StageError(f"{model_dir} holds no saved model: run `dvc repro train_distilbert`")
    hf_dir = TOKENIZED_HF_DIR
    if not hf_dir.exists():
        raise StageError(f"{hf_dir} is missing: run `dvc repro tokenize` first")
    test = datasets.load_from_disk(str(hf_dir))["test"]
    if not np.array_equal(np.asarray(test["label"]), expected_labels):
        raise StageError(f"{hf_dir} and {TOKENIZED_FRAME_DIR} hold different test splits")
    tokenizer = load_tokenizer(str(model_dir), param=None)
    model = load_classifier(str(model_dir), param=None)
    check_fits_model(read_cut_config(TOKENIZED_DIR), model.config, str(model_dir))
    input_ids = test["input_ids"]
    start = time.perf_counter()
    logits = predict_logits(
        model,
        input_ids,
        pad_token_id=tokenizer.pad_token_id,
        batch_size=config.batch_size,
        device=device,
        bf16=config.bf16,
        desc="distilbert",
    )
    return positive_proba(logits), time.perf_counter() - start


def score_int8(config: EvaluateParams, expected_labels: np.ndarray) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/distilbert-onnx's int8 graph (on the CPU),
    and the seconds scoring took."""
    import datasets

    if not TOKENIZED_HF_DIR.exists():
        raise StageError(f"{TOKENIZED_HF_DIR} is missing: run `dvc repro tokenize` first")
    test = datasets.load_from_disk(str(TOKENIZED_HF_DIR))["test"]
    if not np.array_equal(np.asarray(test["label"]), expected_labels):
        raise StageError(f"{TOKENIZED_HF_DIR} and {TOKENIZED_FRAME_DIR} hold different test splits")
    return score_test_split(test["input_ids"], TOKENIZED_DIR, config.batch_size)


def confident_errors(
    frame: pd.DataFrame, proba: np.ndarray, n_errors: int, chars: int
) -> list[dict[str, Any]]:
    """The `n_errors` wrong predictions made with the highest confidence, most confident
    first (ties in input order)."""
    labels = frame["label"].to_numpy()
    predicted = (proba >= 0.5).astype(labels.dtype)
    confidence = np.maximum(proba, 1 - proba)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:n_errors]
    return [
        {
            "label": ID2LABEL[int(labels[i])],
            "p_positive": round(float(proba[i]), 4),
            "n_tokens": int(frame["n_tokens"].iloc[i]),
            "text": shorten(frame["text"].iloc[i], chars),
        }
        for i in order
    ]


def shorten(text: str, chars: int) -> str:
    """One line of at most `chars` characters: the start of the review, then `…`."""
    text = " ".join(str(text).split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def errors_markdown(errors: dict[str, list[dict[str, Any]]], n_test: int) -> str:
    lines = [
        "# Most confidently wrong test reviews",
        "",
        f"Per model, the test reviews (of {n_test}) it got wrong with the highest confidence.",
        "`label` is the true label; `P(positive)` is the model's score.",
    ]
    for name, rows in errors.items():
        lines += ["", f"## {name}", ""]
        if not rows:
            lines.append("No wrong predictions.")
            continue
        lines += [
            "| # | label | P(positive) | tokens | review |",
            "| --- | --- | --- | --- | --- |",
        ]
        for rank, row in enumerate(rows, 1):
            text = row["text"].replace("\\", "\\\\").replace("|", "\\|")
            lines.append(
                f"| {rank} | {row['label']} | {row['p_positive']:.4f} | {row['n_tokens']} "
                f"| {text} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    config = load_section(load_params(), "evaluate", EvaluateParams)
    # Checked before any model is scored.
    device = pick_device(config.device)
    frame = read_test_frame()
    labels = frame["label"].to_numpy()
    entries = {BACKEND_ENTRIES[backend] for backend in config.backends}
    names = [name for name in MODEL_NAMES if name in CLASSICAL_MODELS or name in entries]
    log.info("scoring %d test reviews with %s", len(frame), ", ".join(names))

    scores: dict[str, np.ndarray] = {}
    metrics: dict[str, dict[str, Any]] = {}
    timings: dict[str, dict[str, float]] = {}
    for name in names:
        model_dir = ONNX_DIR if name == INT8_MODEL else MODELS_DIR / name
        if not model_dir.is_dir():
            raise StageError(f"{model_dir} is missing: run `dvc repro` to train it first")
        if name == TRANSFORMER_MODEL:
            proba, seconds = score_transformer(config, device, labels)
        elif name == INT8_MODEL:
            proba, seconds = score_int8(config, labels)
        else:
            proba, seconds = score_classical(name, frame)
        if proba.shape != labels.shape or not np.isfinite(proba).all():
            raise StageError(f"{model_dir}: scores of shape {proba.shape}, some not finite")
        scores[name] = proba
        metrics[name] = {
            **classification_metrics(labels, proba),
            "size_mb": int8_size_mb(model_dir) if name == INT8_MODEL else model_size_mb(model_dir),
        }
        # Apart from the metrics: they vary from run to run and machine to machine.
        timings[name] = {
            "runtime_s": round(seconds, 3),
            "reviews_per_s": round(len(labels) / max(seconds, 1e-9), 1),
        }
        log.info("%s: %s %s", name, json.dumps(metrics[name]), json.dumps(timings[name]))

    errors = {
        name: confident_errors(frame, proba, config.n_errors, config.error_chars)
        for name, proba in scores.items()
    }
    # No out is replaced until all of them are written.
    outs = (TEST_METRICS_DIR, TIMINGS_FILE, ERRORS_FILE, PLOTS_DIR)
    with atomic_outputs(*outs) as (metrics_dir, timings_file, errors_file, plots):
        metrics_dir.mkdir(parents=True)
        for name, values in metrics.items():
            (metrics_dir / f"{name}.json").write_text(json_text(values), encoding="utf-8")
        plots.mkdir(parents=True)
        for name, proba in scores.items():
            write_plot_data(plots / name, frame, proba, config.curve_points, config.length_buckets)
        errors_file.write_text(errors_markdown(errors, len(frame)), encoding="utf-8")
        timings_file.write_text(json_text(timings), encoding="utf-8")
    log.info("wrote %s, %s, %s and %s", *outs)


if __name__ == "__main__":
    run_stage(main)
