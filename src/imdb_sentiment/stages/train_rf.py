"""train_rf: a RandomForest on the bag of n-grams of the tokenized reviews.

Reads `data/tokenized/frame/{train,validation}.parquet`, turns each review into binary
n-gram presence features, keeps the `select_k` n-grams that chi-squared finds most tied to
the label on the training split (a forest draws `max_features` candidates per split at
random, so dropping the ~140k n-grams that say little about sentiment makes each draw
count: better trees in less time), adds the review's summed Naive Bayes evidence over all
n-grams (`NBEvidence`, cross-fitted) and fits a `RandomForestClassifier`. Nothing is chosen
on the test split. Writes the fitted pipeline to `models/rf/model.skops` and the
validation metrics to `metrics/validation/rf.json`.
"""

from __future__ import annotations

from imdb_sentiment.classical.forest import RFParams, build_pipeline
from imdb_sentiment.classical.training import train_and_save
from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import load_params, load_section, load_shared


def main() -> None:
    params = load_params()
    seed = load_shared(params).seed
    config = load_section(params, "train_rf", RFParams)
    forest = f"a {config.n_estimators}-tree forest"
    train_and_save(build_pipeline(config, seed), "rf", forest)


if __name__ == "__main__":
    run_stage(main)
