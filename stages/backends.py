"""How predict runs DistilBERT: `--backend torch` (bf16 autocast where the CPU or GPU does
bf16 in hardware, else fp32) or `--backend onnx-int8` (the int8 ONNX copy that
`export_onnx` writes, with ONNX Runtime on the CPU). Both cut a review as training did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from stages.classical_store import MODEL_FILE
from stages.errors import StageError
from stages.onnx_inference import INT8_FILE, ONNX_DIR, onnx_proba
from stages.paths import MODELS_DIR
from stages.precision import bf16_autocast

BACKENDS = ("torch", "onnx-int8")
TextScorer = Callable[[Path, list[str], int], np.ndarray]


def model_dir_for(model: str, backend: str, model_dir: Path | None) -> tuple[Path, str]:
    """The folder to load (`model_dir`, or the default for the model and backend) and the
    file that must be in it."""
    if backend == "onnx-int8":
        if model != "distilbert":
            raise StageError(f"--backend onnx-int8 runs distilbert only, not --model {model}")
        return model_dir or ONNX_DIR, INT8_FILE
    return model_dir or MODELS_DIR / model, "config.json" if model == "distilbert" else MODEL_FILE


def distilbert_proba(
    backend: str, model_dir: Path, texts: Sequence[str], batch_size: int, torch_proba: TextScorer
) -> np.ndarray:
    """P(positive) of the cleaned `texts`: `torch_proba` (predict's transformers pipeline)
    under bf16 autocast where the hardware has it, or the int8 ONNX model."""
    if backend == "onnx-int8":
        return onnx_proba(model_dir, texts, batch_size)
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with bf16_autocast(device, bf16=True):
        return torch_proba(model_dir, list(texts), batch_size)
