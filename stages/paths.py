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
METRICS_DIR = Path("metrics")
# Run times and throughputs: outs, but not DVC metrics, so a metrics diff shows quality only.
TIMINGS_DIR = Path("timings")
SPLITS = ("train", "validation", "test")
