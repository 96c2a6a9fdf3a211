"""The RandomForest pipeline of `train_rf`: binary n-gram presence, the `select_k` n-grams
that chi-squared ties most to the label on the training split (a forest draws
`max_features` candidates per split at random, so dropping the ~140k n-grams that say
little about sentiment makes each draw count), the review's summed Naive Bayes evidence
(`NBEvidence`, cross-fitted), then a `RandomForestClassifier`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectKBest, chi2
from sklearn.pipeline import FeatureUnion, Pipeline

from imdb_sentiment.classical.features import NBEvidence, NgramParams, presence_vectorizer


class RFParams(NgramParams):
    # How many n-grams (chosen by chi-squared on train) the forest sees; null keeps all.
    select_k: int | None = Field(3000, ge=1)
    # Add the review's summed Naive Bayes evidence over all n-grams (cross-fitted on train)
    # as four more features; see NBEvidence.
    nb_evidence: bool = True
    nb_alpha: float = Field(1.0, gt=0)
    n_estimators: int = Field(200, ge=1, le=10_000)
    max_depth: int | None = Field(None, ge=1)
    # Candidates per split: "sqrt", "log2", a count (int >= 1) or a share (0 < x <= 1).
    max_features: Literal["sqrt", "log2"] | int | float = "sqrt"
    min_samples_leaf: int = Field(1, ge=1)
    # Share of the training reviews each tree is grown on; null grows on a full bootstrap.
    max_samples: float | None = Field(0.5, gt=0, le=1)
    class_weight: Literal["balanced", "balanced_subsample"] | None = None
    # 0 is quiet; 1 logs the trees built as they finish.
    verbose: int = Field(0, ge=0, le=3)

    @field_validator("max_features")
    @classmethod
    def _max_features_in_range(cls, value: str | int | float) -> str | int | float:
        if isinstance(value, bool):
            raise ValueError("must be sqrt, log2, an int >= 1 or a float in (0, 1]")
        if isinstance(value, int) and value < 1:
            raise ValueError("an int max_features must be >= 1")
        if isinstance(value, float) and not 0 < value <= 1:
            raise ValueError("a float max_features must be in (0, 1]")
        return value


def build_pipeline(config: RFParams, seed: int) -> Pipeline:
    """n-gram presence -> [the chi-squared `select_k` best, summed NB evidence] -> a forest."""
    vectorizer = presence_vectorizer(config)
    selected = (
        SelectKBest(chi2, k=config.select_k) if config.select_k is not None else "passthrough"
    )
    blocks = [("selected", selected)]
    if config.nb_evidence:
        blocks.append(("evidence", NBEvidence(alpha=config.nb_alpha, random_state=seed)))
    forest = RandomForestClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        max_features=config.max_features,
        min_samples_leaf=config.min_samples_leaf,
        max_samples=config.max_samples,
        class_weight=config.class_weight,
        n_jobs=config.n_jobs,
        random_state=seed,
        verbose=config.verbose,
    )
    return Pipeline(
        [
            ("ngrams", ColumnTransformer([("ngrams", vectorizer, config.column)])),
            ("features", FeatureUnion(blocks)),
            ("forest", forest),
        ]
    )
