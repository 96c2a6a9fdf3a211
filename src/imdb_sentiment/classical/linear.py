"""The NB-LR pipeline of `train_linear` (Wang & Manning 2012's NB-SVM with a logistic loss):
binary word n-gram (and, optionally, character n-gram) presence, each scaled by its Naive
Bayes log-count ratio fitted on the training split, then an L2 logistic regression. The
baseline that tells a reviewer how much the transformer buys.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from imdb_sentiment.classical.features import (
    NBLogCountRatio,
    NgramParams,
    PresenceVectorizer,
    presence_vectorizer,
)


class LinearParams(NgramParams):
    ngram_max: int = Field(3, ge=1, le=5)
    # Character n-gram lengths [min, max] taken inside words of `text`; null turns them off.
    char_ngrams: list[int] | None = None
    # Laplace smoothing of the NB log-count ratio.
    nb_alpha: float = Field(1.0, gt=0)
    # Inverse L2 regularisation strength of the logistic regression.
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(1000, ge=1)
    # 0 is quiet; 1 prints the solver's progress.
    verbose: int = Field(0, ge=0, le=3)

    @field_validator("char_ngrams")
    @classmethod
    def _char_range(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or not 1 <= value[0] <= value[1] <= 10):
            raise ValueError("must be [min, max] with 1 <= min <= max <= 10")
        return value


def build_pipeline(config: LinearParams, seed: int) -> Pipeline:
    """Binary n-gram presence -> NB log-count ratio scaling -> logistic regression."""
    blocks = [("words", presence_vectorizer(config), config.column)]
    if config.char_ngrams is not None:
        chars = PresenceVectorizer(
            analyzer="char_wb",
            ngram_range=tuple(config.char_ngrams),
            min_df=config.min_df,
            max_df=config.max_df,
            max_features=config.max_vocabulary,
            binary=True,
            dtype=np.float32,
        )
        blocks.append(("chars", chars, "text"))
    return Pipeline(
        [
            # One block runs in this process: a worker pool would only copy the reviews.
            (
                "features",
                ColumnTransformer(blocks, n_jobs=config.n_jobs if len(blocks) > 1 else None),
            ),
            ("nb", NBLogCountRatio(alpha=config.nb_alpha)),
            (
                "logreg",
                LogisticRegression(
                    C=config.C,
                    solver="liblinear",
                    dual=True,
                    max_iter=config.max_iter,
                    random_state=seed,
                    verbose=config.verbose,
                ),
            ),
        ]
    )
