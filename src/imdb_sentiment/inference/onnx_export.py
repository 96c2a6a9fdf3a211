"""Exporting the fine-tuned model as ONNX graphs for fast CPU inference.

From a model folder of `train_distilbert`:
- `model.onnx`: the fp32 graph (`torch.onnx.export`) after ONNX Runtime's transformer
  optimiser fused each layer's attention, the LayerNorms (with their residual adds) and
  the GELUs into single kernels;
- `model.int8.onnx`: the same graph with int8 weights (dynamic quantisation: activations
  are quantised per batch at run time, so no calibration data is needed);
- the tokenizer, `config.json` and `tokenize_config.json`, so that predict cuts a review
  as training did;
- a record of how it was made (opset, fused operators, sizes) and how far the fp32 graph's
  logits are from torch's on seeded probe inputs.

Needs the optional extra `onnx` (`pip install -e '.[onnx]'`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.params import Params
from imdb_sentiment.core.paths import MODELS_DIR
from imdb_sentiment.inference.batching import pad_batch
from imdb_sentiment.inference.model_folder import open_transformer_folder
from imdb_sentiment.inference.onnx_backend import (
    FP32_FILE,
    INPUT_NAMES,
    INT8_FILE,
    OUTPUT_NAME,
    import_onnxruntime,
    load_session,
    onnx_logits,
)
from imdb_sentiment.text.cutting import TOKENIZE_CONFIG_NAME
from imdb_sentiment.transformer.loading import (
    load_classifier,
    refuse_remote_code,
)

log = logging.getLogger("imdb_sentiment.export_onnx")

MODEL_DIR = MODELS_DIR / "distilbert"
RECORD_FILE = "export.json"
WEIGHTS_FILE = "model.safetensors"
# The model types (config.json `model_type`) whose encoder layers ONNX Runtime's BERT
# fusions match, with the optimiser's name for them. Others are refused rather than
# exported unfused.
OPTIMIZER_MODEL_TYPES = {"distilbert": "bert", "bert": "bert"}
# Seeded probe inputs for the export check: (reviews, tokens) per batch, one row padded.
PROBE_SHAPES = ((3, 64), (2, 9))
PROBE_SEED = 0


class ExportParams(Params):
    # ONNX opset of the exported graph (the TorchScript exporter supports 14 to 20).
    opset: int = Field(17, ge=14, le=20)
    # ONNX Runtime optimisations applied with the fusions: 0 (fusions only), 1 (basic).
    # Higher levels are applied when a session loads the graph, on the machine that runs it.
    # An int field, not Literal[0, 1]: a literal of ints takes true, false and 1.0 too.
    opt_level: int = Field(1, ge=0, le=1)
    # int8 weights per output channel rather than per tensor, and in 7 bits (no saturation in
    # the 16-bit sums of CPUs without VNNI): together, labels of the fine-tuned stand-in
    # equal to fp32's on 99% of test reviews, against 94% with neither, at the same speed.
    per_channel: bool = True
    reduce_range: bool = True
    # Largest |logit difference| allowed between the fp32 ONNX graph and torch.
    tolerance: float = Field(1e-4, gt=0)


def weights_sha256(model_dir: Path) -> str:
    """sha256 of the model's weights file (`model.safetensors`)."""
    digest = hashlib.sha256()
    with open(model_dir / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def optimizer_model_type(model_dir: Path) -> str:
    """The optimiser's model type for the model in `model_dir`; one line if it has none."""
    from transformers import PretrainedConfig

    # The raw config.json: a model type this module does not know may not load as a config.
    model_type = PretrainedConfig.get_config_dict(str(model_dir))[0].get("model_type")
    if model_type not in OPTIMIZER_MODEL_TYPES:
        raise StageError(
            f"{model_dir}: model_type {model_type!r} is not one ONNX Runtime's transformer "
            f"optimiser fuses here (supported: {', '.join(OPTIMIZER_MODEL_TYPES)})"
        )
    return OPTIMIZER_MODEL_TYPES[model_type]


def probe_inputs(config: Any, tokenizer: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded random id batches for the model of `config`, the last row of each cut short
    and padded."""
    rng = np.random.default_rng(PROBE_SEED)
    vocab_size, positions = int(config.vocab_size), int(config.max_position_embeddings)
    batches = []
    for rows, longest in PROBE_SHAPES:
        tokens = min(longest, positions)
        ids = [rng.integers(0, vocab_size, size=tokens).tolist() for _ in range(rows)]
        ids[-1] = ids[-1][: max(2, tokens // 2)]
        batches.append(pad_batch(tokenizer, ids))
    return batches


def export_graph(model: Any, path: Path, opset: int, tokenizer: Any) -> None:
    """`torch.onnx.export` with the batch and token axes left free."""
    import torch

    ids, mask = probe_inputs(model.config, tokenizer)[0]
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with torch.inference_mode(), warnings.catch_warnings():
        # The legacy exporter's deprecation notice, and the tracer's notes on shape arithmetic
        # and indexing, which the check against torch on other shapes covers (max_logit_
        # difference on batches of other lengths, with padded rows).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        # The TorchScript exporter, which torch deprecates for `dynamo=True`: ONNX Runtime's
        # attention fusion matches its graph only (the dynamo graph of the 6-layer stand-in
        # fuses 0 of 6 attention layers with onnxruntime 1.31), and int8 speed rests on it.
        torch.onnx.export(
            model,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def optimize(raw: Path, out: Path, model_type: str, config: Any, opt_level: int) -> dict:
    """ONNX Runtime's transformer optimiser; returns how many of each fused operator."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(raw),
        model_type=model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=opt_level,
    )
    optimized.save_model_to_file(str(out))
    fused = optimized.get_fused_operator_statistics()
    attention, layers = fused.get("Attention", 0), int(config.num_hidden_layers)
    if attention < layers:
        log.warning("only %d of the %d attention layers were fused", attention, layers)
    return {name: count for name, count in fused.items() if count}


def quantize(fp32: Path, int8: Path, per_channel: bool, reduce_range: bool) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Its advice to pre-process the graph first is for graphs not optimised yet; this one
    # was, by `optimize`, so the advice is left out of the stage's output.
    advice = _DropMessage("Please consider to run pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            str(fp32),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            # The fused operators (Attention, ...) are outside ONNX's shape inference: their
            # outputs are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.getLogger().removeFilter(advice)


class _DropMessage(logging.Filter):
    """Drops the records whose message starts with `start`."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def max_logit_difference(model: Any, session: Any, tokenizer: Any) -> float:
    """Largest |logit| difference between torch and an ONNX session on the probe inputs."""
    import torch

    worst = 0.0
    for ids, mask in probe_inputs(model.config, tokenizer):
        with torch.inference_mode():
            expected = model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            ).logits.numpy()
        rows = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask, strict=True)]
        got = onnx_logits(session, rows, tokenizer=tokenizer, desc=None)
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export(model_dir: Path, out_dir: Path, params: ExportParams) -> dict[str, Any]:
    """Write the ONNX folder for the model in `model_dir` into `out_dir`; return the record."""
    import_onnxruntime()
    if not (model_dir / "config.json").is_file():
        raise StageError(f"{model_dir} holds no saved model: run `dvc repro train_distilbert`")
    refuse_remote_code(model_dir)
    model_type = optimizer_model_type(model_dir)
    # Labels, cut and tokenizer checked whole, as every backend checks them.
    tokenizer = open_transformer_folder(model_dir, "config.json").tokenizer
    # Eager attention: the explicit MatMul-Softmax-MatMul that the attention fusion matches.
    model = load_classifier(str(model_dir), param=None, attn_implementation="eager").eval()
    out_dir.mkdir(parents=True)
    raw = out_dir / "exported.onnx"
    try:
        export_graph(model, raw, params.opset, tokenizer)
        fused = optimize(raw, out_dir / FP32_FILE, model_type, model.config, params.opt_level)
    except StageError:
        raise
    except Exception as exc:  # the exporter and the optimiser raise many types
        raise StageError(
            f"{model_dir}: cannot export to ONNX ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc
    raw.unlink()
    quantize(out_dir / FP32_FILE, out_dir / INT8_FILE, params.per_channel, params.reduce_range)
    difference = max_logit_difference(model, load_session(out_dir / FP32_FILE), tokenizer)
    if difference > params.tolerance:
        raise StageError(
            f"the fp32 ONNX graph's logits differ from torch's by {difference:.2e}, more than "
            f"export_onnx.tolerance = {params.tolerance}"
        )
    int8_difference = max_logit_difference(model, load_session(out_dir / INT8_FILE), tokenizer)
    tokenizer.save_pretrained(out_dir)
    for name in ("config.json", TOKENIZE_CONFIG_NAME):
        shutil.copy2(model_dir / name, out_dir / name)
    return {
        "opset": params.opset,
        "optimizer_model_type": model_type,
        "fused_operators": fused,
        # Two significant digits: what they tell, and the same bytes on every run.
        "fp32_max_logit_difference": float(f"{difference:.1e}"),
        "int8_max_logit_difference": float(f"{int8_difference:.1e}"),
        "fp32_mb": round((out_dir / FP32_FILE).stat().st_size / 1e6, 3),
        "int8_mb": round((out_dir / INT8_FILE).stat().st_size / 1e6, 3),
        # Which weights this is a copy of: `--backend auto` uses the copy only with them.
        "source_sha256": weights_sha256(model_dir),
    }
