"""P(positive) of new reviews from a trained model folder, for `predict`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imdb_sentiment.classical.store import (
    MODEL_FILE,
    classical_positive_proba,
    load_classical_model,
)
from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.inference.batching import length_order
from imdb_sentiment.inference.onnx_backend import INT8_FILE, ONNX_DIR, onnx_proba
from imdb_sentiment.inference.precision import bf16_autocast
from imdb_sentiment.text.cutting import CutParams, IdCutter, check_fits_model, read_cut_config
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer, refuse_remote_code

BACKENDS = ("torch", "onnx-int8")
# The trained models predict and score load by name (models/<name>).
MODEL_CHOICES = ("distilbert", "rf", "linear")

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


def check_model_dir(model_dir: Path, needed: str) -> None:
    if not model_dir.is_dir():
        raise StageError(
            f"{model_dir}: no such model folder (train it with `dvc repro`, fetch it with "
            "`dvc pull` or `dvc artifacts get`)"
        )
    if not (model_dir / needed).exists():
        raise StageError(f"{model_dir}: {needed} is missing; is this a trained model folder?")


def cutting_pipeline_class() -> type:
    """A text-classification pipeline whose preprocessing cuts a review as training did."""
    from transformers import TextClassificationPipeline

    class CutLikeTrainingPipeline(TextClassificationPipeline):
        cut: CutParams

        def preprocess(self, inputs: str, **tokenizer_kwargs: Any) -> dict[str, Any]:
            import torch

            if not hasattr(self, "_cutter"):
                self._cutter = IdCutter(self.tokenizer, self.cut)
            ids = self.tokenizer(inputs, add_special_tokens=False, verbose=False)["input_ids"]
            framed = torch.tensor([self._cutter(ids)], dtype=torch.long)
            return {"input_ids": framed, "attention_mask": torch.ones_like(framed)}

    return CutLikeTrainingPipeline


def transformer_proba(model_dir: Path, texts: list[str], batch_size: int) -> np.ndarray:
    """P(positive) of `texts` by the saved sequence classifier in `model_dir`."""
    import torch
    import transformers

    check_model_dir(model_dir, "config.json")
    refuse_remote_code(model_dir)
    cut = read_cut_config(model_dir)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        classifier = transformers.pipeline(
            "text-classification",
            model=str(model_dir),
            tokenizer=str(model_dir),
            pipeline_class=cutting_pipeline_class(),
            device=0 if torch.cuda.is_available() else -1,
            trust_remote_code=False,
        )
    except Exception as exc:  # transformers and safetensors raise many types
        detail = " ".join(str(exc).split())[:200]
        raise StageError(
            f"{model_dir}: cannot load the model ({type(exc).__name__}: {detail})"
        ) from exc
    check_fits_model(cut, classifier.model.config, str(model_dir / "tokenize_config.json"))
    vocab_size = getattr(classifier.model.config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(classifier.tokenizer) > vocab_size:
        raise StageError(
            f"{model_dir}: its tokenizer has {len(classifier.tokenizer)} tokens, more than "
            f"the model's {vocab_size}"
        )
    classifier.cut = cut
    label2id = {name.upper(): idx for idx, name in classifier.model.config.id2label.items()}
    if label2id.get("POSITIVE") != 1:
        raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")
    # Longest first, so the pipeline's batches hold reviews of similar length (less padding).
    order = length_order([len(text) for text in texts])
    proba = np.empty(len(texts), dtype=np.float64)
    try:
        outputs = classifier([texts[i] for i in order], batch_size=batch_size, top_k=None)
        for index, scores in zip(order, outputs, strict=True):
            proba[index] = next(s["score"] for s in scores if s["label"].upper() == "POSITIVE")
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:  # weights of a wrong shape
        raise StageError(
            f"{model_dir}: the model cannot score reviews ({type(exc).__name__}: "
            f"{one_line(exc, 200)})"
        ) from exc
    return proba


def classical_proba(
    model_dir: Path, texts: list[str], tokenizer_name: str, tokenizer_param: str = "model.name"
) -> np.ndarray:
    """P(positive) of `texts` by the classical pipeline in `model_dir`."""
    check_model_dir(model_dir, MODEL_FILE)
    pipeline = load_classical_model(model_dir)
    tokenizer = load_tokenizer(tokenizer_name, tokenizer_param)
    # Whole-review tokens joined by spaces, exactly as `tokenize` writes them for training.
    tokens = tokenize_texts(texts, tokenizer, CutParams())["tokens"]
    frame = pd.DataFrame({"text": texts, "tokens": tokens})
    return classical_positive_proba(pipeline, frame, str(model_dir / MODEL_FILE))
