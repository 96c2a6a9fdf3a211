"""Print the test-split results of the workspace as a compact table, one row per model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = Path("metrics/evaluate.json")
COLUMNS = ("accuracy", "f1", "roc_auc", "log_loss")


def main() -> None:
    if not METRICS.exists():
        sys.exit(f"error: {METRICS} is missing: run `make quick` or `dvc repro` first")
    scores = json.loads(METRICS.read_text(encoding="utf-8"))
    print(f"{'model':<16}" + "".join(f"{name:>10}" for name in COLUMNS) + "   (test split)")
    for model, metrics in scores.items():
        cells = "".join(
            f"{metrics[name]:>10.4f}" if metrics.get(name) is not None else f"{'-':>10}"
            for name in COLUMNS
        )
        print(f"{model:<16}{cells}")


if __name__ == "__main__":
    main()
