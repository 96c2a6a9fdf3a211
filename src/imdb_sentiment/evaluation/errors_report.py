"""A model's most confidently wrong test reviews, as Markdown for a reviewer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from imdb_sentiment.core.labels import ID2LABEL


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


def errors_markdown(model: str, rows: list[dict[str, Any]], n_test: int) -> str:
    """The Markdown page of one model's most confidently wrong test reviews."""
    lines = [
        f"# {model}: the most confidently wrong test reviews",
        "",
        f"The test reviews (of {n_test}) {model} got wrong with the highest confidence.",
        "`label` is the true label; `P(positive)` is the model's score.",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "No wrong predictions."]) + "\n"
    lines += [
        "| # | label | P(positive) | tokens | review |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rank, row in enumerate(rows, 1):
        text = row["text"].replace("\\", "\\\\").replace("|", "\\|")
        lines.append(
            f"| {rank} | {row['label']} | {row['p_positive']:.4f} | {row['n_tokens']} | {text} |"
        )
    return "\n".join(lines) + "\n"
