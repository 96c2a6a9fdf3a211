"""Fast batch inference of a sequence-classification transformer, shared by `evaluate`
and the benchmarks.

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
- the last encoder layer computes only the [CLS] position, the one the classification
  head reads (the other positions still serve as its keys and values): a sixth of a
  six-layer model's work, with the same logits (DistilBERT and BERT sequence
  classifiers; other models run whole).
The logits come back in the original order of the inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.inference.batching import length_sorted_batches, pad_batch
from imdb_sentiment.inference.precision import bf16_autocast

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


# Sequence classifiers whose head reads only the first position's final hidden state.
CLS_HEAD_MODELS = {"DistilBertForSequenceClassification", "BertForSequenceClassification"}


def _first_position_attention(attention: Any, hidden_states: Any, mask: Any, projections: tuple):
    """Multi-head attention output for the first position only, keys/values from all."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    query_proj, key_proj, value_proj = projections
    batch, head_size = hidden_states.shape[0], attention.attention_head_size
    query = query_proj(hidden_states[:, :1]).view(batch, 1, -1, head_size).transpose(1, 2)
    key = key_proj(hidden_states).view(batch, hidden_states.shape[1], -1, head_size).transpose(1, 2)
    value = value_proj(hidden_states)
    value = value.view(batch, hidden_states.shape[1], -1, head_size).transpose(1, 2)
    if mask is not None:
        mask = mask[:, :, :1, :]  # (batch, 1, queries, keys): the first query's row
    interface = ALL_ATTENTION_FUNCTIONS["sdpa"]
    output, _ = interface(
        attention, query, key, value, mask, dropout=0.0, scaling=attention.scaling
    )
    return output.reshape(batch, 1, -1)


def _distilbert_first_position(block: Any) -> Any:
    def forward(hidden_states: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
        attention = block.attention
        projections = (attention.q_lin, attention.k_lin, attention.v_lin)
        mixed = _first_position_attention(attention, hidden_states, attention_mask, projections)
        attended = block.sa_layer_norm(attention.out_lin(mixed) + hidden_states[:, :1])
        return block.output_layer_norm(block.ffn(attended) + attended)

    return forward


def _bert_first_position(layer: Any) -> Any:
    def forward(hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
        attention = layer.attention.self
        projections = (attention.query, attention.key, attention.value)
        mixed = _first_position_attention(attention, hidden_states, attention_mask, projections)
        attended = layer.attention.output(mixed, hidden_states[:, :1])
        return layer.output(layer.intermediate(attended), attended)

    return forward


@contextmanager
def first_position_last_layer(model: Any) -> Iterator[bool]:
    """While inside, the model's last encoder layer computes only the first ([CLS])
    position, all its classification head reads. Yields whether it could (a DistilBERT or
    BERT sequence classifier with SDPA attention, the default); other models run unchanged."""
    name = type(model).__name__
    attention_kind = getattr(model.config, "_attn_implementation", None)
    layer, patched = None, None
    if name in CLS_HEAD_MODELS and attention_kind == "sdpa":
        if name.startswith("DistilBert"):
            layer = model.distilbert.transformer.layer[-1]
            patched = _distilbert_first_position(layer)
        elif not model.config.is_decoder and not model.config.add_cross_attention:
            layer = model.bert.encoder.layer[-1]
            patched = _bert_first_position(layer)
    if layer is None:
        yield False
        return
    if "forward" in vars(layer):  # already inside this context: leave it to the outer one
        yield True
        return
    layer.forward = patched
    try:
        yield True
    finally:
        del layer.forward  # back to the class's forward


def predict_logits(
    model: Any,
    input_ids: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    batch_size: int = 64,
    device: Any = None,
    bf16: bool = True,
    first_position_only: bool = True,
    desc: str = "predict",
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
        tqdm(total=len(input_ids), desc=desc, unit="review", mininterval=2) as progress,
    ):
        pending = length_sorted_batches(lengths, batch_size)
        while pending:
            indices = pending.pop(0)
            ids_array, mask = pad_batch([input_ids[i] for i in indices], pad_token_id)
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
