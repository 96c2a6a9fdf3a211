"""The last-layer shortcut of transformer inference: the last encoder layer computes only the
first ([CLS]) position, the one a DistilBERT or BERT sequence classifier's head reads (the
other positions still serve as its keys and values): a sixth of a six-layer model's work,
with the same logits.

It replaces a private piece of transformers (the layer's `forward`), so it is trusted only
after :func:`shortcut_matches` has compared its logits with the unpatched model's on a
seeded probe; where the internals differ (another transformers version, another attention
implementation), the model runs whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("imdb_sentiment.inference")

# How far the shortcut's logits may be from the whole model's: float32 rounding of the same
# sums in another order (measured: below 1e-6 on the tiny and the 6-layer models).
SHORTCUT_TOLERANCE = 1e-4
PROBE_SHAPE = (3, 24)


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


def shortcut_matches(model: Any, device: Any) -> bool:
    """Whether the shortcut applies to `model` and gives its logits: both are computed on a
    seeded probe (one row padded), in fp32, and compared."""
    import torch

    rows, tokens = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    high = max(2, int(getattr(model.config, "vocab_size", 2)))
    ids = torch.randint(1, high, (rows, tokens), generator=generator).to(device)
    mask = torch.ones_like(ids)
    mask[-1, tokens // 2 :] = 0
    try:
        with torch.inference_mode():
            whole = model(input_ids=ids, attention_mask=mask).logits.float()
            with first_position_last_layer(model) as applied:
                if not applied:
                    return False
                cut = model(input_ids=ids, attention_mask=mask).logits.float()
    except Exception as exc:  # the internals it patches changed shape: run the model whole
        log.warning("the last-layer shortcut fails on this model (%s): scoring runs it whole", exc)
        return False
    difference = float((whole - cut).abs().max())
    if difference > SHORTCUT_TOLERANCE:
        log.warning(
            "the last-layer shortcut changes this model's logits by %.1e: scoring runs it whole",
            difference,
        )
        return False
    return True
