"""train_linear: the NB-LR baseline (Wang & Manning 2012's NB-SVM with a logistic loss).

Reads `data/tokenized/frame/{train,validation}.parquet`, turns each review into binary
word n-gram (and, optionally, character n-gram) presence features, scales each by its
Naive Bayes log-count ratio fitted on the training split and fits an L2 logistic
regression on them. It is the baseline that tells a reviewer how much the transformer
buys. Nothing is chosen on the test split. Writes the fitted pipeline to
`models/linear/model.skops` and the validation metrics to `metrics/validation/linear.json`.
"""

from __future__ import annotations

from imdb_sentiment.classical.linear import LinearParams, build_pipeline
from imdb_sentiment.classical.training import train_and_save
from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import load_params, load_section, load_shared


def main() -> None:
    params = load_params()
    seed = load_shared(params).seed
    config = load_section(params, "train_linear", LinearParams)
    train_and_save(build_pipeline(config, seed), "linear", "NB-LR")


if __name__ == "__main__":
    run_stage(main)
