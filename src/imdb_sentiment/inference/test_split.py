"""Scoring the tokenized test split with each trained model, for `evaluate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from imdb_sentiment.classical.features import pipeline_positive_proba
from imdb_sentiment.classical.store import load_classical_model
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.params import Params
from imdb_sentiment.core.paths import (
    MODELS_DIR,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
)
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.onnx_backend import (
    score_test_split,
)
from imdb_sentiment.inference.torch_backend import predict_logits
from imdb_sentiment.text.cutting import check_fits_model, read_cut_config
from imdb_sentiment.transformer.loading import load_classifier, load_tokenizer

TRANSFORMER_MODEL = "distilbert"


class EvaluateParams(Params):
    # DistilBERT reviews per batch: the largest that fits (halved on out-of-memory).
    batch_size: int = Field(64, ge=1)
    # bf16 autocast where the GPU or CPU does bf16 in hardware (inference.precision).
    bf16: bool = True
    # auto (the GPU when there is one), cpu, cuda, cuda:1, ...
    device: str = Field("auto", min_length=1)
    # How DistilBERT is scored: each backend is one entry of the metrics.
    backends: list[Literal["torch", "onnx-int8"]] = Field(
        default_factory=lambda: ["torch", "onnx-int8"], min_length=1
    )
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

    @field_validator("backends")
    @classmethod
    def _distinct(cls, backends: list[str]) -> list[str]:
        if len(set(backends)) != len(backends):
            raise ValueError("lists a backend twice")
        return backends


def model_size_mb(model_dir: Path) -> float:
    """Size on disk of every file in `model_dir`, in MB (10^6 bytes)."""
    total = sum(path.stat().st_size for path in model_dir.rglob("*") if path.is_file())
    return round(total / 1e6, 3)


def read_test_frame() -> pd.DataFrame:
    path = TOKENIZED_FRAME_DIR / "test.parquet"
    if not path.exists():
        raise StageError(f"{path} is missing: run `dvc repro tokenize` first")
    frame = pd.read_parquet(path, columns=["text", "label", "tokens", "n_tokens"])
    if frame.empty:
        raise StageError(f"{path} holds no reviews")
    return frame


def score_classical(name: str, frame: pd.DataFrame) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/{name}, and the seconds scoring took."""
    pipeline = load_classical_model(MODELS_DIR / name)
    start = time.perf_counter()
    proba = pipeline_positive_proba(pipeline, frame)
    return proba, time.perf_counter() - start


def score_transformer(
    config: EvaluateParams, device: Any, expected_labels: np.ndarray
) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/distilbert, and the seconds scoring took."""
    import datasets

    model_dir = MODELS_DIR / TRANSFORMER_MODEL
    if not (model_dir / "config.json").exists():
        raise StageError(f"{model_dir} holds no saved model: run `dvc repro train_distilbert`")
    hf_dir = TOKENIZED_HF_DIR
    if not hf_dir.exists():
        raise StageError(f"{hf_dir} is missing: run `dvc repro tokenize` first")
    test = datasets.load_from_disk(str(hf_dir))["test"]
    if not np.array_equal(np.asarray(test["label"]), expected_labels):
        raise StageError(f"{hf_dir} and {TOKENIZED_FRAME_DIR} hold different test splits")
    tokenizer = load_tokenizer(str(model_dir), param=None)
    model = load_classifier(str(model_dir), param=None)
    check_fits_model(read_cut_config(TOKENIZED_DIR), model.config, str(model_dir))
    input_ids = test["input_ids"]
    start = time.perf_counter()
    logits = predict_logits(
        model,
        input_ids,
        pad_token_id=tokenizer.pad_token_id,
        batch_size=config.batch_size,
        device=device,
        bf16=config.bf16,
        desc="distilbert",
    )
    return positive_proba(logits), time.perf_counter() - start


def score_int8(config: EvaluateParams, expected_labels: np.ndarray) -> tuple[np.ndarray, float]:
    """P(positive) of the test reviews by models/distilbert-onnx's int8 graph (on the CPU),
    and the seconds scoring took."""
    import datasets

    if not TOKENIZED_HF_DIR.exists():
        raise StageError(f"{TOKENIZED_HF_DIR} is missing: run `dvc repro tokenize` first")
    test = datasets.load_from_disk(str(TOKENIZED_HF_DIR))["test"]
    if not np.array_equal(np.asarray(test["label"]), expected_labels):
        raise StageError(f"{TOKENIZED_HF_DIR} and {TOKENIZED_FRAME_DIR} hold different test splits")
    return score_test_split(test["input_ids"], TOKENIZED_DIR, config.batch_size)
