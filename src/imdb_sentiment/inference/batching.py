"""Batches for inference: reviews sorted by length (longest first, so a batch that does
not fit fails at once), grouped, and padded to the longest in their batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_order(lengths: Sequence[int]) -> np.ndarray:
    """Indices of the inputs, longest first; the sort is stable, so equal lengths keep
    their input order and the batches are the same on every run."""
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices of the inputs grouped into batches of similar length, longest first."""
    order = length_order(lengths)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(
    input_ids: Sequence[Sequence[int]], pad_token_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a batch to its longest member: (ids, attention mask) as int64 arrays."""
    longest = max(len(ids) for ids in input_ids)
    ids_array = np.full((len(input_ids), longest), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(input_ids), longest), dtype=np.int64)
    for row, ids in enumerate(input_ids):
        ids_array[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return ids_array, mask
