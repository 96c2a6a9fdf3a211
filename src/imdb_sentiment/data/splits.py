"""Turning the raw splits into the pipeline's train / validation / test: labels checked,
text cleaned, empty reviews (and, if asked, duplicates) dropped, a stratified and seeded
validation slice carved out of train, and stratified caps for a quick run. Nothing is
chosen on the test split.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.model_selection import train_test_split

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.text.cleaning import CleaningParams, clean_text

log = logging.getLogger("imdb_sentiment.prepare")


class PrepareParams(CleaningParams):
    validation_size: float = Field(0.1, gt=0, lt=1)
    drop_duplicates: bool = False
    # Drop from train and validation the reviews that also occur, word for word after
    # cleaning, in the test split, so that the test split measures generalisation.
    drop_test_overlap: bool = False
    max_train_samples: int | None = Field(None, ge=2)
    max_validation_samples: int | None = Field(None, ge=2)
    max_test_samples: int | None = Field(None, ge=2)


def clean_split(
    frame: pd.DataFrame, split: str, params: PrepareParams
) -> tuple[pd.DataFrame, dict]:
    """Check labels, clean text, drop empty reviews (and duplicates if asked); return the
    cleaned frame (`review_id`, `text`, `label`) and the counts of what was dropped.

    `review_id` is each review's position in `frame`, the source's split, so it names the
    same review whatever is cleaned, dropped or sampled later."""
    if frame.empty:
        raise StageError(f"{split} split is empty")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        example = frame["label"][bad].iloc[0]
        example = example.item() if hasattr(example, "item") else example
        raise StageError(
            f"{split} split: {int(bad.sum())} label(s) outside {{0, 1}}, e.g. {example!r}"
        )
    texts = frame["text"].where(frame["text"].notna(), "").astype(str)
    texts = texts.map(
        lambda text: clean_text(
            text, clean_html=params.clean_html, normalize_whitespace=params.normalize_whitespace
        )
    )
    positions = np.arange(len(frame), dtype=np.int64)
    cleaned = pd.DataFrame({"review_id": positions, "text": texts, "label": labels.astype("int64")})
    empty = cleaned["text"].str.strip() == ""
    cleaned = cleaned[~empty]
    dropped = {"empty": int(empty.sum())}
    if params.drop_duplicates:
        duplicated = cleaned.duplicated(subset="text")
        cleaned = cleaned[~duplicated]
        dropped["duplicates"] = int(duplicated.sum())
    for reason, count in dropped.items():
        if count:
            log.warning("%s: dropped %d %s review(s)", split, count, reason)
    if cleaned.empty:
        raise StageError(f"{split} split is empty after dropping empty reviews")
    if cleaned["label"].nunique() < 2:
        raise StageError(f"{split} split holds only label {int(cleaned['label'].iloc[0])}")
    return cleaned.reset_index(drop=True), dropped


def stratified_sample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """At most `size` rows of `frame`, drawn with `seed` and the label balance kept."""
    if size is None or size >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    return sample.reset_index(drop=True)


def test_overlap(splits: dict[str, pd.DataFrame]) -> int:
    """How many test reviews occur word for word in train or validation."""
    seen = set(splits["train"]["text"]) | set(splits["validation"]["text"])
    return int(splits["test"]["text"].isin(seen).sum())


def split_validation(
    train: pd.DataFrame, validation_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a stratified, seeded validation slice out of train."""
    try:
        fit, validation = train_test_split(
            train, test_size=validation_size, stratify=train["label"], random_state=seed
        )
    except ValueError as exc:
        raise StageError(
            f"prepare.validation_size={validation_size}: cannot split {len(train)} train "
            f"reviews into two stratified parts ({exc})"
        ) from exc
    return fit.reset_index(drop=True), validation.reset_index(drop=True)


def prepare_splits(
    raw: dict[str, pd.DataFrame], config: PrepareParams, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The train / validation / test splits of the raw `train` and `test` frames, and a
    summary of what was kept and dropped (rows, label shares, overlaps)."""
    cleaned, dropped = {}, {}
    for split, frame in raw.items():
        cleaned[split], dropped[split] = clean_split(frame, split, config)

    train, validation = split_validation(cleaned["train"], config.validation_size, seed)
    splits = {
        "train": stratified_sample(train, config.max_train_samples, seed),
        "validation": stratified_sample(validation, config.max_validation_samples, seed),
        "test": stratified_sample(cleaned["test"], config.max_test_samples, seed),
    }

    overlap = test_overlap(splits)
    if overlap:
        log.warning(
            "%d test review(s) also occur word for word in train or validation%s",
            overlap,
            ": dropped from train and validation"
            if config.drop_test_overlap
            else " (prepare.drop_test_overlap: true drops them there)",
        )
    if config.drop_test_overlap:
        seen = set(splits["test"]["text"])
        for split in ("train", "validation"):
            in_test = splits[split]["text"].isin(seen)
            splits[split] = splits[split][~in_test].reset_index(drop=True)
            dropped.setdefault(split, {})["test_overlap"] = int(in_test.sum())

    rows = {split: len(frame) for split, frame in splits.items()}
    summary = {
        "rows": rows,
        "positive_share": {
            split: round(float(frame["label"].mean()), 6) for split, frame in splits.items()
        },
        "test_reviews_also_in_train": overlap,
        "dropped": {
            f"{split}_{reason}": count
            for split, counts in dropped.items()
            for reason, count in counts.items()
        },
    }
    return splits, summary
