"""Scoring with the ONNX copies of the fine-tuned model that `export_onnx` writes, on the
CPU with ONNX Runtime (the optional extra `onnx`).

The ids are cut and framed exactly as training cut them (`tokenize_config.json` beside the
model, `text.cutting.IdCutter`), batched by length as `inference.batching` batches them
(less padding), and the logits come back in the order of the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.batching import length_sorted_batches, pad_batch
from imdb_sentiment.inference.model_folder import TransformerFolder
from imdb_sentiment.text.tokenizing import tokenize_texts

ONNX_DIR = MODELS_DIR / "distilbert-onnx"
# The fp32 graph after ONNX Runtime's transformer fusions, and its int8 copy.
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# What the graph reads and returns.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
NUM_LABELS = 2
INSTALL_HINT = "pip install -e '.[onnx]'"
# predict --backend: how DistilBERT is run, and its name in the metrics (evaluate@<name>).
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
        session = ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise StageError(
            f"{model_file}: cannot load the ONNX model ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc
    check_graph(session, model_file)
    return session


def check_graph(session: Any, model_file: Path) -> None:
    """Stop unless the graph reads exactly `input_ids` and `attention_mask` and returns
    `logits` of shape (reviews, 2): a graph of other labels would score every review."""
    inputs = sorted(node.name for node in session.get_inputs())
    if inputs != sorted(INPUT_NAMES):
        raise StageError(f"{model_file}: the graph reads {inputs}, not {list(INPUT_NAMES)}")
    outputs = {node.name: node.shape for node in session.get_outputs()}
    shape = outputs.get(OUTPUT_NAME)
    if shape is None:
        raise StageError(f"{model_file}: the graph returns {list(outputs)}, no {OUTPUT_NAME!r}")
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != NUM_LABELS):
        raise StageError(
            f"{model_file}: the graph's logits have shape {shape}, not (reviews, {NUM_LABELS})"
        )


def onnx_logits(
    session: Any,
    input_ids: Sequence[Sequence[int]],
    *,
    tokenizer: Any,
    batch_size: int = 64,
    desc: str | None = "score",
) -> np.ndarray:
    """The model's logits (n x labels, float32) for framed, cut `input_ids`, in their order."""
    if batch_size < 1:
        raise StageError(f"batch_size={batch_size}: must be at least 1")
    if any(len(ids) == 0 for ids in input_ids):
        raise StageError("onnx_logits: an input has no token ids")
    logits: np.ndarray | None = None
    lengths = [len(ids) for ids in input_ids]
    with tqdm(
        total=len(input_ids), desc=desc, unit="review", mininterval=2, disable=desc is None
    ) as progress:
        for indices in length_sorted_batches(lengths, batch_size):
            ids_array, mask = pad_batch(tokenizer, [input_ids[i] for i in indices])
            feed = dict(zip(INPUT_NAMES, (ids_array, mask), strict=True))
            out = session.run([OUTPUT_NAME], feed)[0]
            if out.shape != (len(indices), NUM_LABELS):  # a graph whose shape is symbolic
                raise StageError(
                    f"the ONNX graph returned logits of shape {out.shape} for "
                    f"{len(indices)} reviews, not ({len(indices)}, {NUM_LABELS})"
                )
            if logits is None:
                logits = np.empty((len(input_ids), out.shape[1]), dtype=np.float32)
            logits[indices] = out
            progress.update(len(indices))
    return logits if logits is not None else np.empty((0, NUM_LABELS), dtype=np.float32)


def int8_size_mb(model_dir: Path = ONNX_DIR) -> float:
    """What serving the int8 model takes on disk, in MB: the folder less the fp32 graph."""
    files = [p for p in model_dir.rglob("*") if p.is_file() and p.name != FP32_FILE]
    return round(sum(p.stat().st_size for p in files) / 1e6, 3)


class OnnxScorer:
    """P(positive) from the int8 ONNX copy of a fine-tuned model (`export_onnx`'s folder),
    with ONNX Runtime on the CPU; `threads` None lets it use one per physical core."""

    def __init__(
        self,
        folder: TransformerFolder,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        label: str = "score",
    ) -> None:
        self.folder = folder
        self.batch_size = batch_size
        self.label = label
        self.session = load_session(folder.path / INT8_FILE, threads)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Cleaned reviews as ids, cut and framed as training cut them."""
        return tokenize_texts(texts, self.folder.tokenizer, self.folder.cut)["input_ids"]

    def logits(self, input_ids: Sequence[Sequence[int]], desc: str | None = "score") -> np.ndarray:
        """The model's logits of cut, framed ids (`desc` labels the progress bar; None: no bar)."""
        return onnx_logits(
            self.session,
            input_ids,
            tokenizer=self.folder.tokenizer,
            batch_size=self.batch_size,
            desc=desc,
        )

    def score(self, input_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """P(positive) of cut, framed ids, in their order."""
        return positive_proba(self.logits(input_ids, desc=self.label))

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.score(self.encode(texts))
