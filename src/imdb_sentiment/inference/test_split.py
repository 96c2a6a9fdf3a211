"""Scoring the tokenized test split with each trained model, for `evaluate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.params import Params
from imdb_sentiment.core.paths import (
    MODELS_DIR,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
)
from imdb_sentiment.inference.classical_backend import ClassicalScorer
from imdb_sentiment.inference.model_folder import check_same_cut, open_transformer_folder
from imdb_sentiment.inference.onnx_backend import (
    BACKEND_ENTRIES,
    INT8_FILE,
    ONNX_DIR,
    OnnxScorer,
)
from imdb_sentiment.inference.torch_backend import TorchScorer

TRANSFORMER_MODEL = "distilbert"
INT8_MODEL = BACKEND_ENTRIES["onnx-int8"]
# What `evaluate MODEL` scores: the models of the pipeline, and DistilBERT's int8 ONNX copy
# as a model of its own (dvc.yaml runs one evaluate stage per name).
EVALUATED_MODELS = ("rf", "linear", TRANSFORMER_MODEL, INT8_MODEL)


class EvaluateParams(Params):
    # DistilBERT reviews per batch: the largest that fits (halved on out-of-memory).
    batch_size: int = Field(64, ge=1)
    # bf16 autocast where the GPU or CPU does bf16 in hardware (inference.precision).
    bf16: bool = True
    # auto (the GPU when there is one), cpu, cuda, cuda:1, ...
    device: str = Field("auto", min_length=1)
    # Points kept of the ROC and precision-recall curves.
    curve_points: int = Field(200, ge=10, le=10000)
    # Upper edges (exclusive, in whole-review tokens) of the review-length buckets.
    length_buckets: list[int] = Field(default_factory=lambda: [128, 256, 512, 1024])
    # Most confidently wrong reviews listed per model, and characters kept of each.
    n_errors: int = Field(10, ge=0, le=1000)
    error_chars: int = Field(300, ge=20)

    @field_validator("length_buckets")
    @classmethod
    def _increasing(cls, edges: list[int]) -> list[int]:
        if (
            not edges
            or edges[0] <= 0
            or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
        ):
            raise ValueError("must be positive and strictly increasing")
        return edges


def evaluated_model_dir(name: str) -> Path:
    """The folder `evaluate` reads the model `name` from (dvc.yaml declares it as a dep)."""
    return ONNX_DIR if name == INT8_MODEL else MODELS_DIR / name


def read_test_frame() -> pd.DataFrame:
    path = TOKENIZED_FRAME_DIR / "test.parquet"
    if not path.exists():
        raise StageError(f"{path} is missing: run `dvc repro tokenize` first")
    frame = pd.read_parquet(path)
    missing = {"review_id", "text", "label", "tokens", "n_tokens"} - set(frame.columns)
    if missing:
        raise StageError(f"{path} has no column {sorted(missing)}: run `dvc repro tokenize`")
    if frame.empty:
        raise StageError(f"{path} holds no reviews")
    return frame


def read_test_ids(expected_ids: np.ndarray, expected_labels: np.ndarray) -> list[list[int]]:
    """The test split's ids as `tokenize` cut them, checked to be the frame's reviews."""
    import datasets

    if not TOKENIZED_HF_DIR.exists():
        raise StageError(f"{TOKENIZED_HF_DIR} is missing: run `dvc repro tokenize` first")
    test = datasets.load_from_disk(str(TOKENIZED_HF_DIR))["test"]
    same = "review_id" in test.column_names and np.array_equal(
        np.asarray(test["review_id"]), expected_ids
    )
    if not same or not np.array_equal(np.asarray(test["label"]), expected_labels):
        raise StageError(f"{TOKENIZED_HF_DIR} and {TOKENIZED_FRAME_DIR} hold different test splits")
    return test["input_ids"]


def test_split_scorer(name: str, config: EvaluateParams) -> Any:
    """The scorer of the pipeline's model `name` (`distilbert_int8`: its int8 ONNX copy)."""
    if name not in (TRANSFORMER_MODEL, INT8_MODEL):
        return ClassicalScorer(MODELS_DIR / name)
    if name == INT8_MODEL:
        folder = open_transformer_folder(ONNX_DIR, INT8_FILE)
        scorer: Any = OnnxScorer(folder, batch_size=config.batch_size, label=name)
    else:
        folder = open_transformer_folder(MODELS_DIR / name, "config.json")
        scorer = TorchScorer(
            folder,
            batch_size=config.batch_size,
            device=config.device,
            bf16=config.bf16,
            device_param="evaluate.device",
            label=name,
        )
    check_same_cut(folder, TOKENIZED_DIR)
    return scorer


def score_test_split(
    name: str, config: EvaluateParams, frame: pd.DataFrame
) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by the model `name`, scored on what `tokenize` wrote
    (the ids as training cut them, or the text and tokens), and the seconds it took."""
    scorer = test_split_scorer(name, config)
    if isinstance(scorer, ClassicalScorer):
        encoded: Any = frame
    else:
        encoded = read_test_ids(frame["review_id"].to_numpy(), frame["label"].to_numpy())
    start = time.perf_counter()
    proba = scorer.score(encoded)
    return proba, time.perf_counter() - start
