"""The significance table of `make report`: McNemar's p, the paired bootstrap and the Wilson
interval against scipy computed another way, the verdicts on constructed pairs, and the lines
printed when two runs cannot be compared."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from imdb_sentiment.evaluation import report
from imdb_sentiment.evaluation.predictions import PredictionsError, fingerprint, predictions_summary
from imdb_sentiment.evaluation.significance import (
    compare,
    mcnemar_p,
    paired_bootstrap_ci,
    wilson_interval,
)


def pairs(n: int, both: int, fixed: int, broken: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Labels and two runs' predicted labels over n reviews: `both` right in both runs,
    `fixed` right only in the new one, `broken` right only in the base one, the rest wrong
    in both; shuffled, so that nothing depends on the order."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    base_right = np.zeros(n, bool)
    new_right = np.zeros(n, bool)
    base_right[:both] = new_right[:both] = True
    new_right[both : both + fixed] = True
    base_right[both + fixed : both + fixed + broken] = True
    order = rng.permutation(n)
    base_right, new_right = base_right[order], new_right[order]
    return labels, np.where(base_right, labels, 1 - labels), np.where(new_right, labels, 1 - labels)


def test_mcnemar_p_is_the_exact_two_sided_binomial_tail() -> None:
    for fixed, broken in [(10, 1), (1, 10), (30, 12), (0, 5), (7, 7), (200, 150)]:
        # Computed from the binomial distribution's CDF, not with binomtest.
        tail = stats.binom.cdf(min(fixed, broken), fixed + broken, 0.5)
        assert mcnemar_p(fixed, broken) == pytest.approx(min(1.0, 2 * tail), rel=1e-9)
    assert mcnemar_p(0, 0) == 1.0


def test_bootstrap_interval_matches_scipys_paired_bootstrap() -> None:
    labels, base, new = pairs(1000, both=840, fixed=30, broken=12)
    base_right, new_right = base == labels, new == labels
    ours = paired_bootstrap_ci(base_right, new_right)
    theirs = stats.bootstrap(
        (base_right.astype(float), new_right.astype(float)),
        lambda b, n, axis: n.mean(axis=axis) - b.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=10_000,
        method="percentile",
        random_state=np.random.default_rng(123),
    ).confidence_interval
    # Monte Carlo error of two independent bootstraps: well under a review (0.001) here.
    assert ours[0] == pytest.approx(theirs.low, abs=0.0015)
    assert ours[1] == pytest.approx(theirs.high, abs=0.0015)
    # Seeded: the same runs give the same interval.
    assert paired_bootstrap_ci(base_right, new_right) == ours


def test_wilson_interval_is_the_wilson_score_formula() -> None:
    z = stats.norm.ppf(0.975)
    for correct, total in [(863, 1000), (1000, 1000), (0, 40), (21_000, 24_999)]:
        share = correct / total
        centre = (share + z**2 / (2 * total)) / (1 + z**2 / total)
        half = (
            z / (1 + z**2 / total) * math.sqrt(share * (1 - share) / total + z**2 / (4 * total**2))
        )
        low, high = wilson_interval(correct, total)
        assert low == pytest.approx(centre - half, abs=1e-9)
        assert high == pytest.approx(centre + half, abs=1e-9)
    # The example: 86% of 1,000 reviews is about +-2.1 points.
    low, high = wilson_interval(860, 1000)
    assert (high - low) / 2 == pytest.approx(0.0215, abs=0.001)


def test_identical_predictions_give_no_change_p_one_and_within_noise() -> None:
    labels, base, _ = pairs(1000, both=860, fixed=0, broken=0)
    result = compare(labels, base, base)
    assert (result.change, result.fixed, result.broken) == (0.0, 0, 0)
    assert result.ci == (0.0, 0.0)
    assert result.p_value == 1.0
    assert result.verdict == "within noise"


def test_a_ten_point_drop_on_1000_reviews_is_worse() -> None:
    labels, base, new = pairs(1000, both=760, fixed=0, broken=100)
    result = compare(labels, base, new)
    assert result.change == pytest.approx(-0.10)
    assert result.ci[1] < 0 and result.p_value < 1e-20
    assert result.verdict == "worse"


def test_ten_fixed_one_broken_is_a_small_real_gain() -> None:
    """The C = 1.0 -> 0.25 change of the linear model on the quick slice: 10 reviews fixed, 1
    broken, +0.9 points, which unpaired intervals of +-2.1 points would call noise."""
    labels, base, new = pairs(1000, both=862, fixed=10, broken=1)
    result = compare(labels, base, new)
    assert result.change == pytest.approx(0.009)
    assert round(result.p_value, 3) == 0.012
    assert (round(result.ci[0], 3), round(result.ci[1], 3)) == (0.003, 0.016)
    assert result.verdict == "better"


@settings(max_examples=60, deadline=None)
@given(
    counts=st.tuples(
        st.integers(0, 300), st.integers(0, 60), st.integers(0, 60), st.integers(0, 50)
    ).filter(lambda c: sum(c) > 0),
    seed=st.integers(0, 2**16),
)
def test_swapping_the_runs_mirrors_the_result(counts: tuple[int, ...], seed: int) -> None:
    both, fixed, broken, neither = counts
    labels, base, new = pairs(both + fixed + broken + neither, both, fixed, broken, seed)
    forward, backward = compare(labels, base, new), compare(labels, new, base)
    assert forward.change == pytest.approx(-backward.change)
    assert forward.p_value == pytest.approx(backward.p_value)
    low, high = forward.ci
    assert low <= forward.change <= high
    mirrored = {"better": "worse", "worse": "better", "within noise": "within noise"}
    assert backward.verdict == mirrored[forward.verdict]
    if forward.verdict != "within noise":
        assert forward.p_value < 0.05 and (low > 0 or high < 0)


# --- the table ------------------------------------------------------------------------


class FakeRun:
    """A run as the report reads it, from predicted labels held in memory."""

    def __init__(self, label: str, runs: dict[str, pd.DataFrame], fetchable: bool = True):
        self.label, self.runs, self.fetchable = label, runs, fetchable

    def summaries(self) -> dict[str, dict]:
        return {model: predictions_summary(frame) for model, frame in self.runs.items()}

    def predictions(self, model: str) -> pd.DataFrame:
        if not self.fetchable:
            raise PredictionsError(f"{self.label}: predictions/test/{model}.parquet is not here")
        return self.runs[model]


def frame(labels: np.ndarray, predicted: np.ndarray, first_id: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review_id": np.arange(first_id, first_id + len(labels)),
            "label": labels,
            "p_positive": np.where(predicted == 1, 0.9, 0.1),
        }
    )


def table_rows(markdown: str) -> dict[str, list[str]]:
    lines = markdown.splitlines()
    start = lines.index(report.HEADER)
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_table_gives_each_model_its_verdict() -> None:
    labels, base, new = pairs(1000, both=760, fixed=0, broken=100)
    _, same, _ = pairs(1000, both=860, fixed=0, broken=0)
    base_run = FakeRun(
        "experiment quick", {"rf": frame(labels, base), "linear": frame(labels, same)}
    )
    new_run = FakeRun("workspace", {"linear": frame(labels, same), "rf": frame(labels, new)})
    text = report.accuracy_section(base_run, new_run)
    assert "Both scored the same 1,000 test reviews." in text
    rows = table_rows(text)
    assert list(rows) == ["rf", "linear"]  # the pipeline's order
    assert rows["rf"][:3] == ["0.860 [0.837, 0.880]", "0.760 [0.733, 0.785]", "-10.0"]
    assert rows["rf"][4:] == ["<0.001", "worse"]
    assert rows["linear"][2:] == ["0.0", "[0.0, 0.0]", "1.000", "within noise"]
    # Seeded: the same runs give the same text.
    assert report.accuracy_section(base_run, new_run) == text


def test_different_test_sets_give_no_verdict_and_one_line() -> None:
    small_labels, small, _ = pairs(1000, both=860, fixed=0, broken=0)
    full_labels, full, _ = pairs(24_999, both=22_000, fixed=0, broken=0)
    base_run = FakeRun("main", {"rf": frame(full_labels, full)}, fetchable=False)
    new_run = FakeRun("workspace", {"rf": frame(small_labels, small)})
    text = report.accuracy_section(base_run, new_run)
    # No change, interval, p or verdict; the accuracies, each with its interval, stay.
    assert table_rows(text)["rf"] == ["0.880 [0.876, 0.884]", "0.860 [0.837, 0.880]"] + ["-"] * 4
    assert text.count("test sets differ (24,999 vs 1,000 reviews): not comparable") == 1
    assert "Both scored the same" not in text
    # The same size but other reviews is no more comparable.
    other = FakeRun("main", {"rf": frame(small_labels, small, first_id=5)})
    assert "test sets differ (1,000 vs 1,000 reviews): not comparable" in (
        report.accuracy_section(other, new_run)
    )


def test_unfetchable_base_predictions_leave_the_change_and_say_why() -> None:
    labels, base, new = pairs(1000, both=760, fixed=0, broken=100)
    base_run = FakeRun("experiment quick", {"rf": frame(labels, base)}, fetchable=False)
    text = report.accuracy_section(base_run, FakeRun("workspace", {"rf": frame(labels, new)}))
    assert table_rows(text)["rf"][2:] == ["-10.0", "-", "-", "-"]
    assert "experiment quick: predictions/test/rf.parquet is not here" in text


def test_runs_without_predictions_are_one_line() -> None:
    labels, base, _ = pairs(100, both=80, fixed=0, broken=0)
    with_rf = FakeRun("workspace", {"rf": frame(labels, base)})
    assert report.accuracy_section(FakeRun("main", {}), with_rf) == (
        "main has no test predictions (predictions/test/): run its pipeline again with this "
        "version of `evaluate` to compare review by review.\n"
    )
    assert report.accuracy_section(with_rf, FakeRun("workspace", {})).startswith(
        "workspace has no test predictions"
    )
    only_linear = FakeRun("main", {"linear": frame(labels, base)})
    assert report.accuracy_section(only_linear, with_rf) == (
        "No model has test predictions in both runs: main has linear; workspace has rf.\n"
    )


def test_fingerprint_ignores_row_order_but_not_labels() -> None:
    ids, labels = np.array([4, 1, 9]), np.array([1, 0, 1])
    assert fingerprint(ids, labels) == fingerprint(ids[::-1], labels[::-1])
    assert fingerprint(ids, labels) != fingerprint(ids, 1 - labels)
    assert fingerprint(ids, labels) != fingerprint(ids + 1, labels)
