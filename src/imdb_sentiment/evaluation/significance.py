"""Is a change in test accuracy real? Two runs scored on the same reviews are compared review
by review: the reviews both got right or both got wrong say nothing about the change; those
one run fixed and the other broke carry all of it.

- :func:`wilson_interval`: the 95% interval of one accuracy (scipy's Wilson interval);
- :func:`mcnemar_p`: the exact McNemar test, a two-sided binomial test on the discordant
  pairs (scipy's `binomtest`);
- :func:`paired_bootstrap_ci`: the 95% percentile interval of the accuracy difference over
  reviews resampled with replacement, the same resampled reviews for both runs;
- :func:`compare`: all of these for two runs, with a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
# The verdict's threshold on McNemar's p.
ALPHA = 0.05
RESAMPLES = 10_000
# Fixed, so that the same two runs always give the same interval (and the same report text).
BOOTSTRAP_SEED = 0


def wilson_interval(correct: int, total: int) -> tuple[float, float]:
    """The 95% Wilson score interval of an accuracy of `correct` out of `total`."""
    from scipy.stats import binomtest

    interval = binomtest(correct, total).proportion_ci(CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact McNemar p-value: under no change, each review that only one run got right is
    equally likely to be either's, so `fixed` is Binomial(fixed + broken, 1/2). 1 when no
    review differs."""
    from scipy.stats import binomtest

    if fixed + broken == 0:
        return 1.0
    return float(binomtest(fixed, fixed + broken, 0.5).pvalue)


def paired_bootstrap_ci(
    base_correct: np.ndarray,
    new_correct: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95% percentile interval of accuracy(new) - accuracy(base) under a paired bootstrap.

    A resample draws n reviews with replacement; the difference it gives depends only on how
    many of them are fixed (+1), broken (-1) or unchanged (0), and those three counts are
    Multinomial(n, shares). Drawing the counts is the same bootstrap as drawing review
    indices, in memory independent of n (10,000 x 25,000 indices would take 2 GB).
    """
    base_correct = np.asarray(base_correct, dtype=bool)
    new_correct = np.asarray(new_correct, dtype=bool)
    if base_correct.shape != new_correct.shape or base_correct.ndim != 1 or not len(base_correct):
        raise ValueError("needs two equally long, non-empty 1-d arrays of the same reviews")
    n = len(base_correct)
    fixed = int((new_correct & ~base_correct).sum())
    broken = int((base_correct & ~new_correct).sum())
    shares = np.array([fixed, broken, n - fixed - broken]) / n
    counts = np.random.default_rng(seed).multinomial(n, shares, size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """Two runs' test accuracy on the same reviews, and whether the change is real."""

    reviews: int
    base_accuracy: float
    new_accuracy: float
    # Reviews the new run gets right and the base run got wrong, and the other way round.
    fixed: int
    broken: int
    # The paired bootstrap's 95% interval of new - base, as shares (not points).
    ci: tuple[float, float]
    p_value: float

    @property
    def change(self) -> float:
        return self.new_accuracy - self.base_accuracy

    @property
    def verdict(self) -> str:
        """`better` or `worse` where McNemar's p < 0.05 and the interval excludes 0."""
        if self.p_value < ALPHA and self.ci[0] > 0:
            return "better"
        if self.p_value < ALPHA and self.ci[1] < 0:
            return "worse"
        return "within noise"


def compare(
    labels: np.ndarray, base_predicted: np.ndarray, new_predicted: np.ndarray
) -> Comparison:
    """Compare two runs' predicted labels on the same reviews, in the same order."""
    labels = np.asarray(labels)
    base_correct = np.asarray(base_predicted) == labels
    new_correct = np.asarray(new_predicted) == labels
    fixed = int((new_correct & ~base_correct).sum())
    broken = int((base_correct & ~new_correct).sum())
    return Comparison(
        reviews=len(labels),
        base_accuracy=float(base_correct.mean()),
        new_accuracy=float(new_correct.mean()),
        fixed=fixed,
        broken=broken,
        ci=paired_bootstrap_ci(base_correct, new_correct),
        p_value=mcnemar_p(fixed, broken),
    )
