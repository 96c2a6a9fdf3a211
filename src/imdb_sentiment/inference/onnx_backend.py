"""Scoring with the ONNX copies of the fine-tuned model that `export_onnx` writes, on the
CPU with ONNX Runtime (the optional extra `onnx`).

The ids are cut and framed exactly as training cut them (`tokenize_config.json` beside the
model, `text.cutting.IdCutter`), batched by length as `inference.batching` batches them
(less padding), and the logits come back in the order of the inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.batching import length_sorted_batches, pad_batch
from imdb_sentiment.text.cutting import IdCutter, check_fits_model, read_cut_config
from imdb_sentiment.transformer.loading import load_tokenizer, refuse_remote_code

ONNX_DIR = MODELS_DIR / "distilbert-onnx"

# The fp32 graph after ONNX Runtime's transformer fusions, and its int8 copy.
FP32_FILE = "model.onnx"

INT8_FILE = "model.int8.onnx"

# What the graph reads and returns.
INPUT_NAMES = ("input_ids", "attention_mask")

OUTPUT_NAME = "logits"

INSTALL_HINT = "pip install -e '.[onnx]'"

# What decides how a review's ids are cut (tokenize's batch size does not).
CUT_KEYS = ("max_length", "truncation", "head_tokens")

# predict --backend / evaluate.backends: how DistilBERT is run, and its entry in the metrics.
BACKEND_ENTRIES = {"torch": "distilbert", "onnx-int8": "distilbert_int8"}


def import_onnxruntime() -> Any:
    """The onnxruntime module, or one line naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise StageError(f"ONNX Runtime is not installed: {INSTALL_HINT}") from exc
    return onnxruntime


def load_session(model_file: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime session of `model_file` on the CPU; `threads` None lets ONNX Runtime
    use one per physical core."""
    ort = import_onnxruntime()
    if not model_file.is_file():
        raise StageError(f"{model_file} is missing: run `dvc repro export_onnx`")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise StageError(
            f"{model_file}: cannot load the ONNX model ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc


def onnx_logits(
    session: Any,
    input_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    batch_size: int = 64,
    desc: str = "onnx",
) -> np.ndarray:
    """The model's logits (n x labels, float32) for framed, cut `input_ids`, in their order."""
    if batch_size < 1:
        raise StageError(f"batch_size={batch_size}: must be at least 1")
    if any(len(ids) == 0 for ids in input_ids):
        raise StageError("onnx_logits: an input has no token ids")
    logits: np.ndarray | None = None
    lengths = [len(ids) for ids in input_ids]
    with tqdm(total=len(input_ids), desc=desc, unit="review", mininterval=2) as progress:
        for indices in length_sorted_batches(lengths, batch_size):
            ids_array, mask = pad_batch([input_ids[i] for i in indices], pad_token_id)
            feed = dict(zip(INPUT_NAMES, (ids_array, mask), strict=True))
            out = session.run([OUTPUT_NAME], feed)[0]
            if logits is None:
                logits = np.empty((len(input_ids), out.shape[1]), dtype=np.float32)
            logits[indices] = out
            progress.update(len(indices))
    return logits if logits is not None else np.empty((0, 2), dtype=np.float32)


def model_config(model_dir: Path) -> dict[str, Any]:
    """`config.json` of a model folder, as a dict."""
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: cannot read the model's config ({one_line(exc, 200)})") from exc
    if not isinstance(config, dict):
        raise StageError(f"{path}: not a JSON object")
    return config


def check_labels(model_dir: Path) -> None:
    """Stop unless label 1 is POSITIVE, as the scores read it."""
    id2label = model_config(model_dir).get("id2label") or {}
    if str(id2label.get("1", id2label.get(1, ""))).upper() != "POSITIVE":
        raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")


def score_test_split(
    input_ids: Sequence[Sequence[int]], cut_dir: Path, batch_size: int, model_dir: Path = ONNX_DIR
) -> tuple[np.ndarray, float]:
    """P(positive) of ids that `tokenize` cut (as recorded in `cut_dir`) by the int8 model,
    and the seconds scoring took (loading excluded)."""
    from transformers import PretrainedConfig

    check_labels(model_dir)
    cut = read_cut_config(cut_dir)
    check_fits_model(cut, PretrainedConfig.from_dict(model_config(model_dir)), str(model_dir))
    trained = read_cut_config(model_dir)
    if any(getattr(cut, key) != getattr(trained, key) for key in CUT_KEYS):
        raise StageError(
            f"{model_dir} was exported from a model trained on ids cut otherwise than "
            f"{cut_dir}: run `dvc repro`"
        )
    tokenizer = load_tokenizer(str(model_dir), param=None)
    session = load_session(model_dir / INT8_FILE)
    start = time.perf_counter()
    logits = onnx_logits(
        session, input_ids, pad_token_id=tokenizer.pad_token_id, batch_size=batch_size
    )
    return positive_proba(logits), time.perf_counter() - start


def int8_size_mb(model_dir: Path = ONNX_DIR) -> float:
    """What serving the int8 model takes on disk, in MB: the folder less the fp32 graph."""
    files = [p for p in model_dir.rglob("*") if p.is_file() and p.name != FP32_FILE]
    return round(sum(p.stat().st_size for p in files) / 1e6, 3)


def onnx_scorer(
    model_dir: Path, threads: int | None = None
) -> Callable[[Sequence[str], int], np.ndarray]:
    """Load the int8 model in `model_dir` once; return a function from cleaned texts and a
    batch size to P(positive), each text cut as training cut its reviews."""
    from transformers import PretrainedConfig

    refuse_remote_code(model_dir)
    check_labels(model_dir)
    cut = read_cut_config(model_dir)
    check_fits_model(cut, PretrainedConfig.from_dict(model_config(model_dir)), str(model_dir))
    tokenizer = load_tokenizer(str(model_dir), param=None)
    session = load_session(model_dir / INT8_FILE, threads)
    cutter = IdCutter(tokenizer, cut)

    def proba(texts: Sequence[str], batch_size: int) -> np.ndarray:
        encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        input_ids = [cutter(ids) for ids in encoded]
        logits = onnx_logits(
            session, input_ids, pad_token_id=tokenizer.pad_token_id, batch_size=batch_size
        )
        return positive_proba(logits)

    return proba


def onnx_proba(model_dir: Path, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """P(positive) of `texts` (cleaned) by the int8 model in `model_dir`."""
    return onnx_scorer(model_dir)(texts, batch_size)
