"""The order in which the Trainer sees reviews: batches of similar length (less padding)
drawn from `seed + epoch`, so that every process and a resumed run see the same order
(transformers' own sampler draws from a generator that a resume does not restore), and
evaluation longest first.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class EpochSeededLengthGroupedSampler:
    """Length-grouped shuffling (as transformers' LengthGroupedSampler) drawn from
    `seed + epoch`, so every process and a resumed run see the same order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class LengthSortedSampler:
    """Evaluation order: longest first, so batches hold similar lengths (little padding)
    and an out-of-memory error shows on the first batch, not the last."""

    def __init__(self, lengths: list[int]) -> None:
        self.order = [int(i) for i in np.argsort(-np.asarray(lengths), kind="stable")]

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)
