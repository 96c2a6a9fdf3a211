"""Print the test-split results of the workspace as a compact table, one row per model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = Path("metrics/test")
COLUMNS = ("accuracy", "f1", "roc_auc", "log_loss")
# The pipeline's order; any other model file follows, by name.
ORDER = ("rf", "linear", "distilbert", "distilbert_int8")


def main() -> None:
    files = sorted(METRICS.glob("*.json"))
    if not files:
        sys.exit(f"error: {METRICS}/ holds no results: run `make quick` or `dvc repro` first")
    rank = {name: i for i, name in enumerate(ORDER)}
    files.sort(key=lambda path: (rank.get(path.stem, len(ORDER)), path.stem))
    scores = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in files}
    print(f"{'model':<16}" + "".join(f"{name:>10}" for name in COLUMNS) + "   (test split)")
    for model, metrics in scores.items():
        cells = "".join(
            f"{metrics[name]:>10.4f}" if metrics.get(name) is not None else f"{'-':>10}"
            for name in COLUMNS
        )
        print(f"{model:<16}{cells}")


if __name__ == "__main__":
    main()
