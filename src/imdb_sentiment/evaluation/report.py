"""The significance table of `make report`: each model's test accuracy in two runs, compared
review by review, with a verdict a reviewer can trust.

    | model | base | new | change (pt) | 95% CI (pt) | McNemar p | verdict |

Each run is read through a :class:`Run` (its predictions summaries, and each model's
predictions on demand); `evaluation.revisions` gives one for the workspace and one for any
Git revision or DVC experiment. The predictions themselves are loaded only when the two runs
scored the same test reviews (the summaries' fingerprints match).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from imdb_sentiment.evaluation.predictions import PredictionsError, predicted_labels
from imdb_sentiment.evaluation.significance import (
    ALPHA,
    RESAMPLES,
    Comparison,
    compare,
    wilson_interval,
)

HEADER = "| model | base | new | change (pt) | 95% CI (pt) | McNemar p | verdict |"
# The pipeline's models first, in this order; any other follows by name.
MODEL_ORDER = ("rf", "linear", "distilbert", "distilbert_int8")
LEGEND = (
    "base and new: test accuracy [95% Wilson interval]; change: new - base in percentage "
    f"points; 95% CI: paired bootstrap of the change over the same reviews ({RESAMPLES:,} "
    "resamples, seeded); McNemar p: exact test on the reviews only one of the two runs got "
    f"right; verdict: better or worse where p < {ALPHA} and the CI excludes 0."
)


class Run(Protocol):
    """One run's test predictions: `summaries()` ({model: the JSON beside its predictions})
    and `predictions(model)` (its rows, sorted by review_id; raises PredictionsError with
    one line that says what to run when they cannot be had)."""

    label: str

    def summaries(self) -> dict[str, dict[str, Any]]: ...

    def predictions(self, model: str) -> pd.DataFrame: ...


def ordered(models: set[str]) -> list[str]:
    rank = {name: index for index, name in enumerate(MODEL_ORDER)}
    return sorted(models, key=lambda name: (rank.get(name, len(MODEL_ORDER)), name))


def accuracy_cell(correct: int, reviews: int) -> str:
    """`0.863 [0.841, 0.883]`: the accuracy and its 95% Wilson interval."""
    low, high = wilson_interval(correct, reviews)
    return f"{correct / reviews:.3f} [{low:.3f}, {high:.3f}]"


def points(share: float) -> str:
    """A share as signed percentage points, one decimal (`+0.9`, `-12.4`, `0.0`)."""
    value = round(share * 100, 1)
    return "0.0" if value == 0 else f"{value:+.1f}"


def p_cell(p_value: float) -> str:
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def paired(base: pd.DataFrame, new: pd.DataFrame) -> Comparison:
    """Compare two runs' predictions of the same reviews (both sorted by review_id)."""
    if not (
        np.array_equal(base["review_id"], new["review_id"])
        and np.array_equal(base["label"], new["label"])
    ):
        raise PredictionsError("the predictions do not match their test-set fingerprints")
    return compare(
        new["label"].to_numpy(),
        predicted_labels(base["p_positive"].to_numpy()),
        predicted_labels(new["p_positive"].to_numpy()),
    )


def accuracy_section(base: Run, new: Run) -> str:
    """The Markdown of the table, with the lines that say what was compared (or why not)."""
    base_summaries, new_summaries = base.summaries(), new.summaries()
    if not new_summaries:
        return (
            f"{new.label} has no test predictions (predictions/test/): run `dvc repro` or "
            "`make quick` first.\n"
        )
    if not base_summaries:
        return (
            f"{base.label} has no test predictions (predictions/test/): run its pipeline "
            "again with this version of `evaluate` to compare review by review.\n"
        )
    models = ordered(set(base_summaries) & set(new_summaries))
    if not models:
        return (
            f"No model has test predictions in both runs: {base.label} has "
            f"{', '.join(ordered(set(base_summaries)))}; {new.label} has "
            f"{', '.join(ordered(set(new_summaries)))}.\n"
        )
    rows, notes, sizes = [], [], set()
    for model in models:
        old, now = base_summaries[model], new_summaries[model]
        cells = [
            model,
            accuracy_cell(old["correct"], old["reviews"]),
            accuracy_cell(now["correct"], now["reviews"]),
        ]
        if old["test_set"] != now["test_set"]:
            sizes_text = f"{old['reviews']:,} vs {now['reviews']:,} reviews"
            rows.append([*cells, "-", "-", "-", "-"])
            notes.append(f"test sets differ ({sizes_text}): not comparable")
            continue
        sizes.add(now["reviews"])
        try:
            result = paired(base.predictions(model), new.predictions(model))
        except PredictionsError as exc:
            change = now["correct"] / now["reviews"] - old["correct"] / old["reviews"]
            rows.append([*cells, points(change), "-", "-", "-"])
            notes.append(str(exc))
            continue
        low, high = result.ci
        rows.append(
            [
                *cells,
                points(result.change),
                f"[{points(low)}, {points(high)}]",
                p_cell(result.p_value),
                result.verdict,
            ]
        )
    lines = [f"base: {base.label}; new: {new.label}."]
    if sizes:
        shared = " and ".join(f"{size:,}" for size in sorted(sizes))
        lines[0] += f" Both scored the same {shared} test reviews."
    lines += ["", HEADER, "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    extra = list(dict.fromkeys(notes))  # each reason once, in order
    for side, summaries in ((base, base_summaries), (new, new_summaries)):
        only = ordered(set(summaries) - set(models))
        if only:
            extra.append(f"Only in {side.label}: {', '.join(only)}.")
    lines += ["", *extra, *([""] if extra else []), LEGEND]
    return "\n".join(lines) + "\n"
