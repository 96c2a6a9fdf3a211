"""What the classical training stages (`train_rf`, `train_linear`) share: reading the
tokenized frame, fitting with one-line errors, the validation metrics, and saving the model
and its metrics together.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from imdb_sentiment.classical.features import INPUT_COLUMNS, pipeline_positive_proba
from imdb_sentiment.classical.store import save_classical_model
from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.paths import (
    MODELS_DIR,
    SUMMARIES_DIR,
    TIMINGS_DIR,
    TOKENIZED_FRAME_DIR,
    VALIDATION_METRICS_DIR,
)
from imdb_sentiment.evaluation.metrics import classification_metrics, model_size_mb

log = logging.getLogger("imdb_sentiment.classical")


def read_frame(split: str, frame_dir: Path = TOKENIZED_FRAME_DIR) -> pd.DataFrame:
    """One split of the tokenized frame, checked: the input columns and 0/1 int labels."""
    path = Path(frame_dir) / f"{split}.parquet"
    if not path.exists():
        raise StageError(f"{path} is missing: run `dvc repro tokenize` first")
    import pyarrow.parquet as pq

    missing = {*INPUT_COLUMNS, "label"} - set(pq.read_schema(path).names)
    if missing:
        raise StageError(f"{path} lacks the columns {sorted(missing)}: rerun `dvc repro tokenize`")
    frame = pd.read_parquet(path, columns=[*INPUT_COLUMNS, "label"])
    labels = frame["label"]
    if len(frame) and (labels.isna().any() or not labels.isin([0, 1]).all()):
        raise StageError(f"{path}: label must be 0 or 1, found {sorted(labels.unique())[:5]}")
    return frame


def check_training_split(frame: pd.DataFrame, name: str = "train") -> None:
    """Stop on a training split a classifier cannot learn from: empty or a single class."""
    if frame.empty:
        raise StageError(f"the {name} split is empty: nothing to train on")
    classes = frame["label"].unique()
    if len(classes) < 2:
        raise StageError(
            f"the {name} split holds a single class (label {int(classes[0])}) in "
            f"{len(frame)} reviews: a classifier needs both"
        )


def fit_pipeline(pipeline: Pipeline, train: pd.DataFrame) -> float:
    """Fit `pipeline` on the training frame; return the seconds it took.

    A vocabulary that comes out empty (min_df too high, max_df too low) is the one fitting
    failure a user causes with params: it becomes one line naming them.
    """
    start = time.perf_counter()
    try:
        pipeline.fit(train[list(INPUT_COLUMNS)], train["label"].to_numpy())
    except ValueError as exc:
        message = str(exc)
        if "vocabulary" in message or "no terms remain" in message or "min_df" in message:
            raise StageError(
                f"the n-gram vocabulary came out empty on {len(train)} training reviews "
                f"({message}): lower min_df or raise max_df"
            ) from exc
        raise
    return time.perf_counter() - start


def validation_metrics(pipeline: Pipeline, validation: pd.DataFrame) -> dict[str, Any]:
    """Quality on the validation split (the test split is `evaluate`'s); none when the
    split is empty."""
    if not len(validation):
        log.warning("the validation split is empty: no validation metrics")
        return {}
    return classification_metrics(
        validation["label"].to_numpy(), pipeline_positive_proba(pipeline, validation)
    )


def train_and_save(pipeline: Pipeline, name: str, what: str) -> None:
    """The body of a classical stage: fit `pipeline` on the train split, score it on
    validation, then save the model to `models/<name>`, the validation metrics to
    `metrics/validation/<name>.json`, what was fitted to `summaries/train_<name>.json` and
    the fit time to `timings/train_<name>.json` (apart, so that a metrics diff shows only
    changes in quality)."""
    model_dir = MODELS_DIR / name
    metrics_file = VALIDATION_METRICS_DIR / f"{name}.json"
    summary_file = SUMMARIES_DIR / f"train_{name}.json"
    timings_file = TIMINGS_DIR / f"train_{name}.json"
    train = read_frame("train")
    check_training_split(train)
    validation = read_frame("validation")
    log.info("fitting %s on %d reviews", what, len(train))
    fit_s = fit_pipeline(pipeline, train)
    metrics = validation_metrics(pipeline, validation)
    log.info("validation: %s", metrics)
    summary = {"train_reviews": len(train), "n_features": n_features(pipeline)}
    timings = {"fit_s": round(fit_s, 3)}
    # No out is replaced until all of them are written.
    outs = (model_dir, metrics_file, summary_file, timings_file)
    with atomic_outputs(*outs) as (tmp_dir, tmp_metrics, tmp_summary, tmp_timings):
        save_classical_model(pipeline, tmp_dir)
        # The keys of the test metrics: the model's size too.
        metrics["size_mb"] = model_size_mb(tmp_dir)
        tmp_metrics.write_text(json_text(metrics), encoding="utf-8")
        tmp_summary.write_text(json_text(summary), encoding="utf-8")
        tmp_timings.write_text(json_text(timings), encoding="utf-8")
    log.info("wrote %s, %s, %s and %s", *outs)


def n_features(pipeline: Pipeline) -> int:
    """How many features the final estimator of `pipeline` sees."""
    return int(pipeline.steps[-1][1].n_features_in_)
