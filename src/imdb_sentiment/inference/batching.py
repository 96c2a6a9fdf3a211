"""Batches for inference: reviews sorted by length (longest first, so a batch that does
not fit fails at once), grouped, and padded to the longest in their batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def length_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices of the inputs, longest first; the sort is stable, so equal lengths keep
    their input order and the batches are the same on every run."""
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices of the inputs grouped into batches of similar length, longest first."""
    order = length_order(lengths)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(tokenizer: Any, input_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad a batch to its longest member as the model's tokenizer pads (its pad token, on its
    padding side): (ids, attention mask) as int64 arrays."""
    padded = tokenizer.pad(
        {"input_ids": [list(ids) for ids in input_ids]},
        padding="longest",
        return_attention_mask=True,
        return_tensors="np",
    )
    return padded["input_ids"].astype(np.int64), padded["attention_mask"].astype(np.int64)
