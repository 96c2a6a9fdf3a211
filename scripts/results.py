"""Print the test-split results of the workspace as a compact table, one row per model; each
accuracy with its 95% Wilson interval, from the model's predictions summary."""

from __future__ import annotations

import json
import sys
from typing import Any

from imdb_sentiment.core.paths import SUMMARIES_DIR, TEST_METRICS_DIR, TEST_PREDICTIONS_DIR
from imdb_sentiment.evaluation.predictions import PredictionsError, read_summary
from imdb_sentiment.evaluation.report import accuracy_cell, ordered

COLUMNS = ("f1", "roc_auc", "log_loss")
ACCURACY_WIDTH = 24
# The fine-tuned models are named with the base model they were fine-tuned from.
TRANSFORMER_SUMMARY = SUMMARIES_DIR / "train_distilbert.json"
TRANSFORMER_MODELS = ("distilbert", "distilbert_int8")


def model_labels(models: list[str]) -> dict[str, str]:
    """Each model's name in the table: `distilbert (all-MiniLM-L6-v2)` for a fine-tuned one."""
    try:
        base = json.loads(TRANSFORMER_SUMMARY.read_text(encoding="utf-8")).get("base_model")
    except (OSError, ValueError):
        base = None
    return {
        model: f"{model} ({base})" if base and model in TRANSFORMER_MODELS else model
        for model in models
    }


def summary_of(model: str) -> dict[str, Any] | None:
    """The model's predictions summary (reviews, correct), or None when there is none."""
    path = TEST_PREDICTIONS_DIR / f"{model}.json"
    try:
        return read_summary(path.read_text(encoding="utf-8"), str(path))
    except (OSError, PredictionsError):
        return None


def main() -> None:
    files = {path.stem: path for path in TEST_METRICS_DIR.glob("*.json")}
    if not files:
        sys.exit(
            f"error: {TEST_METRICS_DIR}/ holds no results: run `make quick` or `dvc repro` first"
        )
    models = ordered(set(files))
    scores = {model: json.loads(files[model].read_text(encoding="utf-8")) for model in models}
    summaries = {model: summary_of(model) for model in models}
    sizes = {summary["reviews"] for summary in summaries.values() if summary}
    size = f", {sizes.pop():,} reviews" if len(sizes) == 1 else ""
    labels = model_labels(models)
    width = max(16, *(len(label) + 2 for label in labels.values()))
    print(
        f"{'model':<{width}}{'accuracy [95% CI]':>{ACCURACY_WIDTH}}"
        + "".join(f"{name:>10}" for name in COLUMNS)
        + f"   (test split{size})"
    )
    for model, metrics in scores.items():
        summary = summaries[model]
        if summary:
            accuracy = accuracy_cell(summary["correct"], summary["reviews"])
        else:  # no predictions summary to say of how many reviews: the bare accuracy
            accuracy = "-" if metrics.get("accuracy") is None else f"{metrics['accuracy']:.3f}"
        cells = "".join(
            f"{metrics[name]:>10.4f}" if metrics.get(name) is not None else f"{'-':>10}"
            for name in COLUMNS
        )
        print(f"{labels[model]:<{width}}{accuracy:>{ACCURACY_WIDTH}}{cells}")


if __name__ == "__main__":
    main()
