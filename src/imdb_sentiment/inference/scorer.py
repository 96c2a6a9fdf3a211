"""One way to turn reviews into P(positive), for every model and backend.

A scorer is loaded once from a model folder and checked whole there; then
`scorer.proba(texts)` scores cleaned reviews. It does that in two steps that can be called
apart: `encode(texts)` turns reviews into what the model reads (for a transformer, ids cut
as training cut them; for a classical model, the text with its tokens), and
`score(encoded)` gives P(positive) of those. `evaluate` calls `score` on what `tokenize`
already encoded; `predict`, `score` and the benchmarks call `proba`.

| model | backend | folder | runs on |
| --- | --- | --- | --- |
| `distilbert` | `torch` | `models/distilbert` | PyTorch, bf16 where the device has it in hardware |
| `distilbert` | `onnx-int8` | `models/distilbert-onnx` | ONNX Runtime, int8 weights, CPU |
| `distilbert` | `auto` | both | the faster of the two here (`inference.auto_backend`) |
| `rf`, `linear` | (any) | `models/<name>` | scikit-learn |
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imdb_sentiment.classical.store import MODEL_FILE
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.inference.auto_backend import choose_backend
from imdb_sentiment.inference.classical_backend import ClassicalScorer
from imdb_sentiment.inference.model_folder import check_model_dir, open_transformer_folder
from imdb_sentiment.inference.onnx_backend import INT8_FILE, ONNX_DIR, OnnxScorer
from imdb_sentiment.inference.torch_backend import TorchScorer

# The trained models predict and score load by name (models/<name>).
MODEL_CHOICES = ("distilbert", "rf", "linear")
TRANSFORMER = "distilbert"
BACKENDS = ("auto", "torch", "onnx-int8")
# What a transformer folder of each backend must hold.
BACKEND_FILES = {"torch": "config.json", "onnx-int8": INT8_FILE}


class Scorer(Protocol):
    def encode(self, texts: Sequence[str]) -> Any: ...

    def score(self, encoded: Any) -> np.ndarray: ...

    def proba(self, texts: Sequence[str]) -> np.ndarray: ...


def model_dir_for(model: str, backend: str, model_dir: Path | None = None) -> Path:
    """The folder a model and backend load: `model_dir`, else the pipeline's default. For
    `auto` that is the torch folder (its int8 copy is looked for in models/distilbert-onnx)."""
    if model != TRANSFORMER:
        if backend == "onnx-int8":
            raise StageError(f"--backend onnx-int8 runs {TRANSFORMER} only, not --model {model}")
        return model_dir or MODELS_DIR / model
    if backend == "onnx-int8":
        return model_dir or ONNX_DIR
    return model_dir or MODELS_DIR / TRANSFORMER


def check_model(model: str, backend: str, model_dir: Path | None = None) -> Path:
    """Stop in one line, before any input is read, when the model's folder is not there."""
    folder = model_dir_for(model, backend, model_dir)
    needed = MODEL_FILE if model != TRANSFORMER else BACKEND_FILES.get(backend, "config.json")
    check_model_dir(folder, needed)
    return folder


def load_scorer(
    model: str,
    backend: str = "auto",
    model_dir: Path | None = None,
    *,
    batch_size: int = 32,
    device: str = "auto",
    tokenizer: str | None = None,
    tokenizer_param: str = "model.name",
    threads: int | None = None,
    one_core: bool = False,
    onnx_dir: Path = ONNX_DIR,
) -> Scorer:
    """The scorer of `model` run by `backend`, from `model_dir` (else the pipeline's folder).

    `tokenizer` is the classical models' tokenizer (the one `tokenize` used); `threads` and
    `one_core` keep a scorer to its share of the CPUs (ONNX Runtime's threads; one core for
    a classical pipeline); `onnx_dir` is where `auto` looks for the int8 copy.
    """
    folder = check_model(model, backend, model_dir)
    if model != TRANSFORMER:
        return ClassicalScorer(
            folder, tokenizer=tokenizer, tokenizer_param=tokenizer_param, one_core=one_core
        )
    if backend == "auto":
        backend = choose_backend(folder, onnx_dir, device)
        if backend == "onnx-int8":
            folder = onnx_dir
    if backend == "onnx-int8":
        return OnnxScorer(
            open_transformer_folder(folder, INT8_FILE), batch_size=batch_size, threads=threads
        )
    return TorchScorer(
        open_transformer_folder(folder, "config.json"), batch_size=batch_size, device=device
    )
