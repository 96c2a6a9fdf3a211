"""Classification metrics, computed with scikit-learn (the Hugging Face `evaluate` library
loads its metrics from the Hub, so it cannot run offline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def positive_proba(logits: np.ndarray) -> np.ndarray:
    """P(label 1 = POSITIVE) from two-class logits, in float64 (so a P close to 0 or 1
    keeps its precision for the log loss)."""
    from scipy.special import softmax

    return softmax(np.asarray(logits, dtype=np.float64), axis=1)[:, 1]


def label_metrics(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 of the positive class, of predicted labels
    (what the Trainer reports on validation, where only the labels are gathered)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="binary", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def classification_metrics(
    labels: np.ndarray, positive_proba: np.ndarray
) -> dict[str, float | None]:
    """:func:`label_metrics`, ROC AUC and log loss of binary predictions.

    `positive_proba` is P(label == 1); the predicted label is proba >= 0.5, which is the
    argmax of two-class probabilities. ROC AUC is None (JSON null) when only one class is
    present, since it is undefined there.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    labels = np.asarray(labels)
    positive_proba = np.asarray(positive_proba, dtype=np.float64)
    predicted = (positive_proba >= 0.5).astype(labels.dtype)
    single_class = len(np.unique(labels)) < 2
    return {
        **label_metrics(labels, predicted),
        "roc_auc": None if single_class else float(roc_auc_score(labels, positive_proba)),
        "log_loss": float(
            log_loss(labels, np.clip(positive_proba, 1e-15, 1 - 1e-15), labels=[0, 1])
        ),
    }


def model_size_mb(model_dir: Path) -> float:
    """Size on disk of every file in `model_dir`, in MB (10^6 bytes): every metrics file's
    `size_mb`, so that validation and test rows have the same keys."""
    total = sum(path.stat().st_size for path in Path(model_dir).rglob("*") if path.is_file())
    return round(total / 1e6, 3)
