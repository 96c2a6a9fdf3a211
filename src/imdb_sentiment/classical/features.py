"""The classical models' features: how a review becomes a bag of n-grams, and the Naive
Bayes log-count ratio that both classical models build on.

The estimators defined here are saved inside the skops files under this module's name
(`imdb_sentiment.classical.features.NBEvidence`, ...): moving them would change every
saved model's bytes and make old model files unloadable.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, field_validator
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.utils.validation import check_is_fitted

from imdb_sentiment.core.params import Params

# The columns a classical pipeline reads: the cleaned review and its WordPiece tokens.
INPUT_COLUMNS = ("text", "tokens")
# Words keep one-letter tokens and `!`/`?`, which carry sentiment ("a 1/10", "avoid!").
WORD_PATTERN = r"(?u)\b\w+\b|[!?]"
# The `tokens` column is already split: one token per run of non-space characters.
TOKEN_PATTERN = r"\S+"


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
        # As many folds as the rarer class allows (at least 2): a tiny training split
        # still gets cross-fitted evidence instead of an error.
        n_folds = min(self.n_folds, int(np.bincount(y.astype(np.int64)).min()))
        if n_folds < 2:
            return sp.csr_matrix(self._evidence(X, self.ratio_))
        folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.random_state)
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


def pipeline_positive_proba(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    """P(positive) for every review of `frame` by a fitted classical pipeline, quietly: a
    model's `verbose` is for its fit (a forest's would print joblib lines on every call)."""
    estimator = pipeline.steps[-1][1]
    verbose = getattr(estimator, "verbose", 0)
    if verbose:
        estimator.verbose = 0
    try:
        proba = pipeline.predict_proba(frame[list(INPUT_COLUMNS)])[:, 1]
    finally:
        if verbose:
            estimator.verbose = verbose
    return np.asarray(proba, dtype=np.float64)
