"""Helpers shared by the classical models (`train_rf`, `train_linear`) and by the stages that
load them (`evaluate`, `predict`): reading the tokenized frame, the n-gram features, the
Naive Bayes log-count ratio, fitting with one-line errors, and skops persistence.

A saved classical model is one fitted scikit-learn `Pipeline` in `models/<name>/model.skops`
whose input is a DataFrame with the columns `text` and `tokens` (as in
`data/tokenized/frame/`) and which has `predict_proba` (column 1 = P(positive)).
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, field_validator
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from stages.common import (
    TOKENIZED_FRAME_DIR,
    Params,
    StageError,
    atomic_path,
    classification_metrics,
    write_json,
)

log = logging.getLogger("imdb_sentiment.classical")

MODEL_FILE = "model.skops"
# The columns a classical pipeline reads: the cleaned review and its WordPiece tokens.
INPUT_COLUMNS = ("text", "tokens")
# zip entries carry a modification time; a fixed one makes the same model the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Attributes that hold an `id()` of the process that fitted the estimator (a cache key of
# the vectorizers): zeroed in the saved state, which they would make differ per process.
PROCESS_ATTRIBUTES = frozenset({"_stop_words_id"})
# Words keep one-letter tokens and `!`/`?`, which carry sentiment ("a 1/10", "avoid!").
WORD_PATTERN = r"(?u)\b\w+\b|[!?]"
# The `tokens` column is already split: one token per run of non-space characters.
TOKEN_PATTERN = r"\S+"

# Every type a saved classical pipeline may hold; skops refuses to build anything else.
TRUSTED_TYPES = (
    "builtins.slice",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.feature_selection._univariate_selection.SelectKBest",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "stages.classical.NBEvidence",
    "stages.classical.NBLogCountRatio",
    "stages.classical.PresenceVectorizer",
)


class NgramParams(Params):
    """How a review becomes a bag of n-grams (the keys every classical model shares)."""

    # `text` (the cleaned review, split into words) or `tokens` (the WordPiece tokens).
    column: Literal["text", "tokens"] = "text"
    ngram_max: int = Field(2, ge=1, le=5)
    # Keep an n-gram seen in at least min_df training reviews and at most max_df of them.
    min_df: int = Field(2, ge=1)
    max_df: float = Field(1.0, gt=0, le=1)
    # Keep only the max_vocabulary most frequent n-grams; null keeps all.
    max_vocabulary: int | None = Field(None, ge=1)
    # Parallel workers (the forest's trees; the word and character vectorizers); -1 uses
    # every core.
    n_jobs: int = Field(-1, ge=-1)

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("n_jobs must be -1 (all cores) or >= 1")
        return value


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


class PresenceVectorizer(CountVectorizer):
    """A CountVectorizer whose saved state holds its vocabulary as two arrays (the terms'
    UTF-8 bytes end to end, and where each ends) instead of a dict.

    skops writes every entry of a dict as a JSON object of its own: NB-LR's 851k n-grams
    would take minutes and hundreds of MB to save; two arrays take a fraction of a second.
    """

    def __getstate__(self) -> dict[str, Any]:
        # A copy: outside sklearn's own modules, BaseEstimator hands back __dict__ itself.
        state = dict(super().__getstate__())
        vocabulary = state.pop("vocabulary_", None)
        if vocabulary is not None:
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            encoded = [term.encode("utf-8") for term in terms]
            state["vocabulary_utf8_"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            state["vocabulary_ends_"] = np.cumsum(lengths)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        blob = state.pop("vocabulary_utf8_", None)
        ends = state.pop("vocabulary_ends_", None)
        super().__setstate__(state)
        if blob is not None and ends is not None:
            data = np.asarray(blob, dtype=np.uint8).tobytes()
            starts = [0, *ends[:-1].tolist()]
            self.vocabulary_ = {
                data[start:end].decode("utf-8"): index
                for index, (start, end) in enumerate(zip(starts, ends.tolist(), strict=True))
            }


def presence_vectorizer(config: NgramParams) -> CountVectorizer:
    """1.0 where an n-gram of `config.column` occurs in the review, else 0.

    Presence rather than counts or tf-idf: Wang & Manning found binarized features better
    for sentiment, a tree splits on thresholds anyway, and it is what chi-squared and the NB
    log-count ratio count.
    """
    return PresenceVectorizer(
        lowercase=config.column == "text",
        token_pattern=WORD_PATTERN if config.column == "text" else TOKEN_PATTERN,
        ngram_range=(1, config.ngram_max),
        min_df=config.min_df,
        max_df=config.max_df,
        max_features=config.max_vocabulary,
        binary=True,
        dtype=np.float32,
    )


def log_count_ratio(X: Any, y: Any, alpha: float) -> np.ndarray:
    """The Naive Bayes log-count ratio of each feature (Wang & Manning 2012):
    r = log((p / |p|_1) / (q / |q|_1)), with p and q the feature's sums over the positive
    and the negative reviews plus `alpha`. r > 0 leans positive, r < 0 negative."""
    X = sp.csr_matrix(X)
    y = np.asarray(y)
    positive = np.asarray(X[y == 1].sum(axis=0)).ravel() + alpha
    negative = np.asarray(X[y != 1].sum(axis=0)).ravel() + alpha
    ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    return ratio.astype(np.float32)


class NBLogCountRatio(TransformerMixin, BaseEstimator):
    """Scale each feature by its NB log-count ratio fitted on the training reviews, so a
    linear model starts from what Naive Bayes already knows (NB-SVM)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> NBLogCountRatio:
        self.ratio_ = log_count_ratio(X, y, self.alpha)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        check_is_fitted(self, "ratio_")
        return sp.csr_matrix(sp.csr_matrix(X).multiply(self.ratio_))


class NBEvidence(TransformerMixin, BaseEstimator):
    """Four dense features that sum a review's Naive Bayes evidence over the whole
    vocabulary: the total log-count ratio of its n-grams, that total per n-gram, and the
    positive and the negative parts apart.

    A tree splits on one feature at a time, so it cannot add up the weak votes of thousands
    of n-grams the way a linear model does; these sums hand it that vote. The training
    reviews get theirs cross-fitted (as scikit-learn's TargetEncoder does): each fold is
    scored with a ratio fitted on the other folds, since a ratio fitted on a review would
    make it look surer than any new review (an n-gram seen only in five positive reviews
    gets a large ratio) and the forest would learn to trust the sums too much.
    """

    def __init__(
        self, alpha: float = 1.0, n_folds: int = 5, random_state: int | None = None
    ) -> None:
        self.alpha = alpha
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> NBEvidence:
        self.ratio_ = log_count_ratio(X, y, self.alpha)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        check_is_fitted(self, "ratio_")
        return sp.csr_matrix(self._evidence(sp.csr_matrix(X), self.ratio_))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> sp.csr_matrix:
        from sklearn.model_selection import StratifiedKFold

        X = sp.csr_matrix(X)
        y = np.asarray(y)
        self.fit(X, y)
        evidence = np.zeros((X.shape[0], 4), dtype=np.float32)
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for fit_rows, score_rows in folds.split(X, y):
            ratio = log_count_ratio(X[fit_rows], y[fit_rows], self.alpha)
            evidence[score_rows] = self._evidence(X[score_rows], ratio)
        # Sparse, like the n-gram columns it is stacked with.
        return sp.csr_matrix(evidence)

    @staticmethod
    def _evidence(X: sp.csr_matrix, ratio: np.ndarray) -> np.ndarray:
        total = X @ ratio
        per_ngram = total / (np.asarray(X.sum(axis=1)).ravel() + 1)
        positive = X @ np.maximum(ratio, 0)
        negative = X @ np.minimum(ratio, 0)
        return np.column_stack([total, per_ngram, positive, negative]).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["nb_total", "nb_per_ngram", "nb_positive", "nb_negative"], dtype=object)


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


def positive_proba(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """P(positive) for every review of `frame`."""
    return pipeline.predict_proba(frame[list(INPUT_COLUMNS)])[:, 1]


def validation_metrics(
    pipeline: Pipeline, train: pd.DataFrame, validation: pd.DataFrame, fit_s: float
) -> dict[str, Any]:
    """The metrics a classical stage writes: quality on the validation split, fit time, rows.

    The quality figures are computed on validation only: the test split is `evaluate`'s.
    """
    metrics: dict[str, Any] = {}
    if len(validation):
        metrics.update(
            classification_metrics(
                validation["label"].to_numpy(), positive_proba(pipeline, validation)
            )
        )
    else:
        log.warning("the validation split is empty: no validation metrics")
    metrics.update(
        {
            "fit_s": round(fit_s, 3),
            "rows": len(train),
            "validation_rows": len(validation),
            "n_features": n_features(pipeline),
        }
    )
    return metrics


def train_and_save(pipeline: Pipeline, model_dir: Path, metrics_file: Path, what: str) -> None:
    """The body of a classical stage: fit `pipeline` on the train split, score it on
    validation, then save the model to `model_dir` and the metrics to `metrics_file`."""
    train = read_frame("train")
    check_training_split(train)
    validation = read_frame("validation")
    log.info("fitting %s on %d reviews", what, len(train))
    fit_s = fit_pipeline(pipeline, train)
    metrics = validation_metrics(pipeline, train, validation, fit_s)
    log.info("validation: %s", metrics)
    with atomic_path(model_dir) as tmp_dir:
        save_classical_model(pipeline, tmp_dir)
    write_json(metrics_file, metrics)
    log.info("wrote %s and %s", model_dir, metrics_file)


def n_features(pipeline: Pipeline) -> int:
    """How many features the final estimator of `pipeline` sees."""
    return int(pipeline.steps[-1][1].n_features_in_)


def _canonical_schema(schema: Any, ids: dict[int, int], files: dict[str, str]) -> Any:
    """Replace the `id()`-based object ids and file names skops writes with numbers in order
    of appearance and zero `PROCESS_ATTRIBUTES`, so that nothing changes from one process
    to the next."""
    if isinstance(schema, list):
        return [_canonical_schema(item, ids, files) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in PROCESS_ATTRIBUTES and isinstance(value, dict) and "content" in value:
            # Kept (skops pairs a dict's keys with a list of their types) but zeroed: a
            # cache key that matches nothing only makes the vectorizer check again.
            value = {**value, "content": "0"}
        if key == "__id__" and isinstance(value, int):
            value = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str):
            value = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
        else:
            value = _canonical_schema(value, ids, files)
        result[key] = value
    return result


def model_bytes(pipeline: Pipeline) -> bytes:
    """The skops archive of `pipeline`, made deterministic: the same fitted pipeline gives
    the same bytes in any process (skops names entries after `id()`s and uuids and stamps
    them with the current time, which would change DVC's hash on every run)."""
    import skops.io

    raw = zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline)))
    schema = json.loads(raw.read("schema.json"))
    files: dict[str, str] = {}
    schema = _canonical_schema(schema, {}, files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for old_name, new_name in sorted(files.items(), key=lambda item: item[1]):
            entry = zipfile.ZipInfo(new_name, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, raw.read(old_name))
        entry = zipfile.ZipInfo("schema.json", date_time=ZIP_EPOCH)
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, json.dumps(schema, indent=2))
    return out.getvalue()


def save_classical_model(pipeline: Pipeline, model_dir: Path) -> Path:
    """Write `pipeline` as `model_dir/model.skops` (deterministic bytes); return the path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    path.write_bytes(model_bytes(pipeline))
    return path


def load_classical_model(model_dir: Path | str) -> Pipeline:
    """Load `model_dir/model.skops`, refusing any type outside `TRUSTED_TYPES`."""
    import skops.io

    path = Path(model_dir) / MODEL_FILE
    if not path.exists():
        raise StageError(f"{path} is missing: run the stage that trains it first")
    try:
        untrusted = set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise StageError(f"{path} is not a skops file ({exc})") from exc
    if untrusted:
        raise StageError(f"{path} holds types that are not trusted: {sorted(untrusted)}")
    pipeline = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "predict_proba"):
        raise StageError(f"{path} does not hold a classifier Pipeline")
    return pipeline
