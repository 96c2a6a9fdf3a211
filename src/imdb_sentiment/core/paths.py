"""Where the pipeline's files live: the folders `dvc.yaml` declares as deps and outs."""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
PREPARED_DIR = Path("data/prepared")
TOKENIZED_DIR = Path("data/tokenized")
# The tokenized splits as pandas DataFrames (Parquet), for the classical models.
TOKENIZED_FRAME_DIR = TOKENIZED_DIR / "frame"
# The tokenized splits as a `datasets.DatasetDict` saved with `save_to_disk`, for the Trainer.
TOKENIZED_HF_DIR = TOKENIZED_DIR / "hf"
# How tokenize cut the ids; copied beside the fine-tuned model.
TOKENIZE_CONFIG_FILE = TOKENIZED_DIR / "tokenize_config.json"
MODELS_DIR = Path("models")
# DVC metrics: quality only, one file per model and split with the same keys, so that
# `dvc metrics show` prints one row per file and fits a terminal.
METRICS_DIR = Path("metrics")
TEST_METRICS_DIR = METRICS_DIR / "test"
VALIDATION_METRICS_DIR = METRICS_DIR / "validation"
# Each model's test predictions (review_id, label, p_positive), cached and pushed by DVC: what
# a review-by-review comparison of two runs reads.
TEST_PREDICTIONS_DIR = Path("predictions/test")
# What a stage did (rows, token lengths, training steps): outs kept in Git, not metrics.
SUMMARIES_DIR = Path("summaries")
# Run times and throughputs: outs, not metrics, since they vary from machine to machine.
TIMINGS_DIR = Path("timings")
SPLITS = ("train", "validation", "test")
