"""Print the test-split results of the workspace as a compact table, one row per model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = Path("metrics/test")
COLUMNS = ("accuracy", "f1", "roc_auc", "log_loss")
# The pipeline's order; any other model file follows, by name.
ORDER = ("rf", "linear", "distilbert", "distilbert_int8")
# The fine-tuned models are named with the base model they were fine-tuned from.
TRANSFORMER_SUMMARY = Path("summaries/train_distilbert.json")
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


def main() -> None:
    files = sorted(METRICS.glob("*.json"))
    if not files:
        sys.exit(f"error: {METRICS}/ holds no results: run `make quick` or `dvc repro` first")
    rank = {name: i for i, name in enumerate(ORDER)}
    files.sort(key=lambda path: (rank.get(path.stem, len(ORDER)), path.stem))
    scores = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in files}
    labels = model_labels(list(scores))
    width = max(16, *(len(label) + 2 for label in labels.values()))
    print(f"{'model':<{width}}" + "".join(f"{name:>10}" for name in COLUMNS) + "   (test split)")
    for model, metrics in scores.items():
        cells = "".join(
            f"{metrics[name]:>10.4f}" if metrics.get(name) is not None else f"{'-':>10}"
            for name in COLUMNS
        )
        print(f"{labels[model]:<{width}}{cells}")


if __name__ == "__main__":
    main()
