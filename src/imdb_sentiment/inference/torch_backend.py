"""The torch backend: a fine-tuned transformer's P(positive), fast, in batches.

What buys the speed, compared with `Trainer.predict` over the reviews in their own order:
- reviews are sorted by length, so a batch holds reviews of about the same length and
  padding to the longest in the batch (dynamic padding) pads almost nothing; attention
  costs grow with the square of the padded length, so this is most of the gain on a CPU;
- `torch.inference_mode` (no autograd bookkeeping at all);
- a large batch (a param); the first batch is the longest, so a batch that does not fit
  fails at once and is halved until it fits;
- bf16 autocast on a GPU or CPU that does bf16 in hardware (inference.precision: never on a
  CPU without it, where bf16 would be emulated, slower than fp32);
- only the logits (n x labels, float32) are kept, nothing else the model returns;
- the last encoder layer computes only the [CLS] position (`inference.cls_shortcut`), once
  a probe has shown it gives this model's logits.
The logits come back in the original order of the inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.batching import length_sorted_batches, pad_batch
from imdb_sentiment.inference.cls_shortcut import first_position_last_layer, shortcut_matches
from imdb_sentiment.inference.model_folder import TransformerFolder
from imdb_sentiment.inference.precision import bf16_autocast
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_classifier

log = logging.getLogger("imdb_sentiment.inference")


def pick_device(device: str = "auto", param: str = "evaluate.device") -> Any:
    """`auto` is the GPU when there is one, else the CPU; otherwise `cpu`, `cuda` or
    `cuda:N`, checked against this machine."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    valid = "valid: auto, cpu, cuda or cuda:N"
    try:
        picked = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise StageError(f"{param} = {device!r}: not a device ({valid})") from exc
    if picked.type not in ("cpu", "cuda"):
        raise StageError(f"{param} = {device!r}: cannot score on {picked.type} ({valid})")
    if picked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise StageError(f"{param} = {device!r}: no CUDA GPU on this machine")
        if picked.index is not None and picked.index >= count:
            raise StageError(f"{param} = {device!r}: this machine has {count} GPU(s)")
    return picked


def predict_logits(
    model: Any,
    input_ids: Sequence[Sequence[int]],
    *,
    tokenizer: Any,
    batch_size: int = 64,
    device: Any = None,
    bf16: bool = True,
    first_position_only: bool = False,
    desc: str | None = "score",
) -> np.ndarray:
    """The model's logits (n x num_labels, float32) for `input_ids` (already framed with the
    special tokens and cut to the model's length), in the order of `input_ids`."""
    import torch

    if batch_size < 1:
        raise StageError(f"batch_size={batch_size}: must be at least 1")
    if any(len(ids) == 0 for ids in input_ids):
        raise StageError("predict_logits: an input has no token ids")
    device = device if device is not None else pick_device("auto")
    model.eval()
    model.to(device)
    autocast = bf16_autocast(device, bf16)
    num_labels = int(model.config.num_labels)
    logits = np.empty((len(input_ids), num_labels), dtype=np.float32)
    lengths = [len(ids) for ids in input_ids]
    shortcut = first_position_last_layer(model) if first_position_only else nullcontext(False)
    with (
        shortcut,
        tqdm(
            total=len(input_ids), desc=desc, unit="review", mininterval=2, disable=desc is None
        ) as progress,
    ):
        pending = length_sorted_batches(lengths, batch_size)
        while pending:
            indices = pending.pop(0)
            ids_array, mask = pad_batch(tokenizer, [input_ids[i] for i in indices])
            try:
                with torch.inference_mode(), autocast:
                    out = model(
                        input_ids=torch.from_numpy(ids_array).to(device),
                        attention_mask=torch.from_numpy(mask).to(device),
                    ).logits
            except torch.OutOfMemoryError as exc:
                if len(indices) == 1:
                    raise StageError(
                        f"out of {device.type} memory even with one review of "
                        f"{ids_array.shape[1]} tokens"
                    ) from exc
                # Halve this batch and the ones still to come: the first batch holds the
                # longest reviews, so the smaller size fits the rest.
                batch_size = max(1, len(indices) // 2)
                log.warning("out of memory: batch size lowered to %d", batch_size)
                rest = np.concatenate([indices, *pending]) if pending else indices
                pending = [rest[s : s + batch_size] for s in range(0, len(rest), batch_size)]
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            logits[indices] = out.float().cpu().numpy()
            progress.update(len(indices))
    return logits


class TorchScorer:
    """P(positive) from a fine-tuned model folder with PyTorch: bf16 autocast where the
    device does bf16 in hardware (and `bf16`), fp32 elsewhere."""

    def __init__(
        self,
        folder: TransformerFolder,
        *,
        batch_size: int = 64,
        device: str = "auto",
        bf16: bool = True,
        device_param: str = "--device",
        label: str = "score",
    ) -> None:
        self.folder = folder
        self.batch_size = batch_size
        self.label = label
        self.bf16 = bf16
        self.device = pick_device(device, device_param)
        self.model = load_classifier(str(folder.path), param=None).eval().to(self.device)
        self.first_position_only = shortcut_matches(self.model, self.device)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Cleaned reviews as ids, cut and framed as training cut them."""
        return tokenize_texts(texts, self.folder.tokenizer, self.folder.cut)["input_ids"]

    def logits(self, input_ids: Sequence[Sequence[int]], desc: str | None = "score") -> np.ndarray:
        """The model's logits of cut, framed ids (`desc` labels the progress bar; None: no bar)."""
        return predict_logits(
            self.model,
            input_ids,
            tokenizer=self.folder.tokenizer,
            batch_size=self.batch_size,
            device=self.device,
            bf16=self.bf16,
            first_position_only=self.first_position_only,
            desc=desc,
        )

    def score(self, input_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """P(positive) of cut, framed ids, in their order."""
        return positive_proba(self.logits(input_ids, desc=self.label))

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.score(self.encode(texts))
