"""evaluate MODEL: score one trained model on the test split.

    python -m imdb_sentiment.stages.evaluate MODEL [MODEL ...]

MODEL is rf, linear, distilbert or distilbert_int8 (DistilBERT's int8 ONNX copy); dvc.yaml
runs one `evaluate@MODEL` stage per model, so a change to one model re-scores that model
alone. With no MODEL every one is scored, as the four stages would.

Reads the test split (`data/tokenized/frame/test.parquet`; for DistilBERT also
`data/tokenized/hf`, whose ids were cut as in training) and the model's folder, and writes:
- `metrics/test/MODEL.json`: accuracy, precision, recall, F1, ROC AUC, log loss (for
  DistilBERT the mean cross-entropy, the reference's eval loss) and size_mb (the model
  folder on disk);
- `predictions/test/MODEL.parquet` (review_id, label, p_positive; cached by DVC) and
  `predictions/test/MODEL.json` (reviews, correct, the test set's fingerprint): what
  `make report` compares review by review;
- `timings/evaluate/MODEL.json`: runtime_s and reviews_per_s (scoring only, loading
  excluded), kept out of the metrics so that a metrics diff shows quality alone;
- `plots/evaluate/MODEL/`: the data of the plots declared in dvc.yaml: confusion.csv
  (the count of each actual/predicted pair), roc.csv and precision_recall.csv (downsampled
  to `evaluate.curve_points`), accuracy_by_length.csv (per bucket of `n_tokens`);
- `metrics/errors/MODEL.md`: the model's most confidently wrong test reviews.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.params import load_params, load_section
from imdb_sentiment.core.paths import (
    METRICS_DIR,
    TEST_METRICS_DIR,
    TEST_PREDICTIONS_DIR,
    TIMINGS_DIR,
)
from imdb_sentiment.evaluation.errors_report import confident_errors, errors_markdown
from imdb_sentiment.evaluation.metrics import classification_metrics, model_size_mb
from imdb_sentiment.evaluation.plots import write_plot_data
from imdb_sentiment.evaluation.predictions import write_predictions
from imdb_sentiment.inference.onnx_backend import int8_size_mb
from imdb_sentiment.inference.test_split import (
    EVALUATED_MODELS,
    INT8_MODEL,
    TRANSFORMER_MODEL,
    EvaluateParams,
    evaluated_model_dir,
    read_test_frame,
    score_test_split,
)
from imdb_sentiment.inference.torch_backend import pick_device

log = logging.getLogger("imdb_sentiment.evaluate")

TIMINGS_FOLDER = TIMINGS_DIR / "evaluate"
ERRORS_DIR = METRICS_DIR / "errors"
PLOTS_DIR = Path("plots/evaluate")


def model_outputs(name: str) -> tuple[Path, ...]:
    """The outs of `evaluate@name`, as dvc.yaml declares them."""
    return (
        TEST_METRICS_DIR / f"{name}.json",
        TEST_PREDICTIONS_DIR / f"{name}.parquet",
        TEST_PREDICTIONS_DIR / f"{name}.json",
        TIMINGS_FOLDER / f"{name}.json",
        ERRORS_DIR / f"{name}.md",
        PLOTS_DIR / name,
    )


def evaluate_model(name: str, config: EvaluateParams, frame: pd.DataFrame) -> None:
    """Score the model `name` on the test split and write its outs (none is replaced until
    all of them are written)."""
    model_dir = evaluated_model_dir(name)
    if not model_dir.is_dir():
        raise StageError(f"{model_dir} is missing: run `dvc repro` to train it first")
    labels = frame["label"].to_numpy()
    proba, seconds = score_test_split(name, config, frame)
    if proba.shape != labels.shape or not np.isfinite(proba).all():
        raise StageError(f"{model_dir}: scores of shape {proba.shape}, some not finite")
    metrics = {
        **classification_metrics(labels, proba),
        "size_mb": int8_size_mb(model_dir) if name == INT8_MODEL else model_size_mb(model_dir),
    }
    # Apart from the metrics: they vary from run to run and machine to machine.
    timing = {
        "runtime_s": round(seconds, 3),
        "reviews_per_s": round(len(labels) / max(seconds, 1e-9), 1),
    }
    log.info("%s: %s %s", name, json.dumps(metrics), json.dumps(timing))
    errors = confident_errors(frame, proba, config.n_errors, config.error_chars)
    outs = model_outputs(name)
    with atomic_outputs(*outs) as (metrics_file, parquet, summary, timings, errors_file, plots):
        metrics_file.write_text(json_text(metrics), encoding="utf-8")
        write_predictions(parquet, summary, frame["review_id"].to_numpy(), labels, proba)
        timings.write_text(json_text(timing), encoding="utf-8")
        errors_file.write_text(errors_markdown(name, errors, len(frame)), encoding="utf-8")
        write_plot_data(plots, frame, proba, config.curve_points, config.length_buckets)
    log.info("wrote %s", ", ".join(map(str, outs)))


def main(models: list[str] | None = None) -> None:
    config = load_section(load_params(), "evaluate", EvaluateParams)
    names = list(models or EVALUATED_MODELS)
    unknown = [name for name in names if name not in EVALUATED_MODELS]
    if unknown:
        valid = ", ".join(EVALUATED_MODELS)
        raise StageError(f"evaluate: no model named {unknown[0]!r} (valid: {valid})")
    if TRANSFORMER_MODEL in names:
        # Checked before any model is scored.
        pick_device(config.device, "evaluate.device")
    frame = read_test_frame()
    log.info("scoring %d test reviews with %s", len(frame), ", ".join(names))
    for name in names:
        evaluate_model(name, config, frame)


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
