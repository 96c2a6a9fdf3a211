"""The data of the evaluation plots that dvc.yaml declares, per model: the confusion
matrix (a count per actual/predicted pair, drawn by the `confusion_counts` template in
.dvc/plots/), ROC and precision-recall curves (downsampled) and accuracy by review length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Short class names in the confusion data.
SHORT_LABELS = {0: "neg", 1: "pos"}


def downsample(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    """At most `points` rows of a curve, evenly spaced, the first and last kept."""
    if len(frame) <= points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[keep]


def curve_frames(
    labels: np.ndarray, proba: np.ndarray, points: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC (fpr, tpr, threshold) and precision-recall (recall, precision, threshold) curves."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if len(np.unique(labels)) < 2:
        empty_roc = pd.DataFrame(columns=["fpr", "tpr", "threshold"])
        return empty_roc, pd.DataFrame(columns=["recall", "precision", "threshold"])
    fpr, tpr, roc_thresholds = roc_curve(labels, proba)
    # roc_curve's first threshold is +inf (no review called positive): keep it finite.
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thresholds, 1.0)})
    precision, recall, pr_thresholds = precision_recall_curve(labels, proba)
    # The last point (recall 0, precision 1) has no threshold.
    pr = pd.DataFrame(
        {"recall": recall, "precision": precision, "threshold": np.append(pr_thresholds, 1.0)}
    )
    # Ordered by recall so that the line is drawn left to right.
    pr = pr.iloc[::-1].reset_index(drop=True)
    return downsample(roc, points).round(6), downsample(pr, points).round(6)


def confusion_counts(labels: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """actual, predicted, reviews: one row per pair of classes, zeros included."""
    return pd.DataFrame(
        [
            {
                "actual": SHORT_LABELS[actual],
                "predicted": SHORT_LABELS[guess],
                "reviews": int(((labels == actual) & (predicted == guess)).sum()),
            }
            for actual in SHORT_LABELS
            for guess in SHORT_LABELS
        ]
    )


def length_bucket_names(edges: list[int]) -> list[str]:
    starts = [0, *edges]
    names = [f"{start}-{end - 1}" for start, end in zip(starts, edges, strict=False)]
    return [*names, f"{edges[-1]}+"]


def accuracy_by_length(
    labels: np.ndarray, predicted: np.ndarray, n_tokens: np.ndarray, edges: list[int]
) -> pd.DataFrame:
    """Accuracy per bucket of whole-review length (tokens); empty buckets are left out."""
    bucket = np.searchsorted(np.asarray(edges), n_tokens, side="right")
    names = length_bucket_names(edges)
    rows = []
    for index, name in enumerate(names):
        in_bucket = bucket == index
        if in_bucket.any():
            rows.append(
                {
                    "bucket": name,
                    "min_tokens": ([0, *edges])[index],
                    "reviews": int(in_bucket.sum()),
                    "accuracy": round(float((labels[in_bucket] == predicted[in_bucket]).mean()), 6),
                }
            )
    return pd.DataFrame(rows, columns=["bucket", "min_tokens", "reviews", "accuracy"])


def write_plot_data(
    out_dir: Path,
    frame: pd.DataFrame,
    proba: np.ndarray,
    curve_points: int,
    length_buckets: list[int],
) -> None:
    labels = frame["label"].to_numpy()
    predicted = (proba >= 0.5).astype(labels.dtype)
    out_dir.mkdir(parents=True)
    confusion_counts(labels, predicted).to_csv(out_dir / "confusion.csv", index=False)
    roc, pr = curve_frames(labels, proba, curve_points)
    roc.to_csv(out_dir / "roc.csv", index=False)
    pr.to_csv(out_dir / "precision_recall.csv", index=False)
    accuracy_by_length(labels, predicted, frame["n_tokens"].to_numpy(), length_buckets).to_csv(
        out_dir / "accuracy_by_length.csv", index=False
    )
