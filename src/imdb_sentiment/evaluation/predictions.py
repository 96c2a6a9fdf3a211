"""Each model's test predictions, as `evaluate` writes them and the report reads them back.

`predictions/test/<model>.parquet` holds one row per test review: `review_id` (its position
in the source's test split, given by `prepare`), `label` and `p_positive`; DVC caches and
pushes it. Beside it, `predictions/test/<model>.json` (kept in Git) says how many reviews
there are, how many the model got right, and which reviews they are: the test set's
fingerprint, a hash of its review ids and labels. Two runs are compared review by review
only when their fingerprints match; the JSON tells without fetching the predictions.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMNS = ("review_id", "label", "p_positive")
# The fingerprint's key in the Parquet file's metadata, so that the file says it too.
FINGERPRINT_KEY = b"imdb_sentiment.test_set"


class PredictionsError(Exception):
    """Predictions that cannot be read as this module writes them."""


def fingerprint(review_ids: np.ndarray, labels: np.ndarray) -> str:
    """A hash of which reviews a test split holds and their labels, in any order."""
    review_ids = np.asarray(review_ids, dtype=np.int64)
    order = np.argsort(review_ids, kind="stable")
    digest = hashlib.sha256(review_ids[order].tobytes())
    digest.update(np.asarray(labels, dtype=np.int64)[order].tobytes())
    return digest.hexdigest()


def predicted_labels(p_positive: np.ndarray) -> np.ndarray:
    """The label a score stands for: positive from P(positive) >= 0.5 (the argmax)."""
    return (np.asarray(p_positive) >= 0.5).astype(np.int64)


def predictions_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """What the JSON beside the predictions holds."""
    labels = frame["label"].to_numpy()
    return {
        "reviews": len(frame),
        "correct": int((predicted_labels(frame["p_positive"].to_numpy()) == labels).sum()),
        "test_set": fingerprint(frame["review_id"].to_numpy(), labels),
    }


def write_predictions(
    parquet: Path, summary: Path, review_ids: np.ndarray, labels: np.ndarray, proba: np.ndarray
) -> None:
    """Write the predictions and their summary (into paths the caller makes atomic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(
        {
            "review_id": np.asarray(review_ids, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "p_positive": np.asarray(proba, dtype=np.float64),
        }
    )
    facts = predictions_summary(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), FINGERPRINT_KEY: facts["test_set"].encode()}
    pq.write_table(table.replace_schema_metadata(metadata), parquet)
    summary.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def read_predictions(data: bytes, where: str) -> pd.DataFrame:
    """Predictions from the bytes of a Parquet file, sorted by review_id."""
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise PredictionsError(f"{where}: not a readable Parquet file ({exc})") from exc
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise PredictionsError(f"{where}: missing column(s) {sorted(missing)}")
    if frame["review_id"].duplicated().any():
        raise PredictionsError(f"{where}: a review_id occurs twice")
    return frame[list(COLUMNS)].sort_values("review_id", kind="stable").reset_index(drop=True)


def read_summary(text: str, where: str) -> dict[str, Any]:
    """The JSON beside a model's predictions, checked."""
    try:
        summary = json.loads(text)
        reviews, correct, test_set = summary["reviews"], summary["correct"], summary["test_set"]
    except (ValueError, TypeError, KeyError) as exc:
        raise PredictionsError(f"{where}: not a predictions summary ({exc})") from exc
    if not (isinstance(reviews, int) and isinstance(correct, int) and 0 <= correct <= reviews):
        raise PredictionsError(f"{where}: reviews {reviews!r}, correct {correct!r}")
    if reviews < 1 or not isinstance(test_set, str):
        raise PredictionsError(f"{where}: reviews {reviews!r}, test_set {test_set!r}")
    return summary
