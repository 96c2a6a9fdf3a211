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
from pathlib import Path
from typing import Any

import numpy as np

from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.params import load_params, load_section
from imdb_sentiment.core.paths import (
    METRICS_DIR,
    MODELS_DIR,
    TEST_METRICS_DIR,
    TIMINGS_DIR,
)
from imdb_sentiment.evaluation.errors_report import confident_errors, errors_markdown
from imdb_sentiment.evaluation.metrics import classification_metrics, model_size_mb
from imdb_sentiment.evaluation.plots import write_plot_data
from imdb_sentiment.inference.onnx_backend import (
    BACKEND_ENTRIES,
    ONNX_DIR,
    int8_size_mb,
)
from imdb_sentiment.inference.test_split import (
    INT8_MODEL,
    TRANSFORMER_MODEL,
    EvaluateParams,
    read_test_frame,
    score_test_split,
)
from imdb_sentiment.inference.torch_backend import pick_device

log = logging.getLogger("imdb_sentiment.evaluate")

CLASSICAL_MODELS = ("rf", "linear")


MODEL_NAMES = (*CLASSICAL_MODELS, TRANSFORMER_MODEL, INT8_MODEL)
TIMINGS_FILE = TIMINGS_DIR / "evaluate.json"
ERRORS_FILE = METRICS_DIR / "errors.md"
PLOTS_DIR = Path("plots/evaluate")


def main() -> None:
    config = load_section(load_params(), "evaluate", EvaluateParams)
    # Checked before any model is scored.
    pick_device(config.device, "evaluate.device")
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
        proba, seconds = score_test_split(name, config, frame)
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
