"""export_onnx: the fine-tuned model as ONNX graphs for fast CPU inference.

Reads `models/distilbert` and writes `models/distilbert-onnx/`:
- `model.onnx`: the fp32 graph (`torch.onnx.export`) after ONNX Runtime's transformer
  optimiser fused each layer's attention, the LayerNorms (with their residual adds) and
  the GELUs into single kernels;
- `model.int8.onnx`: the same graph with int8 weights (dynamic quantisation: activations
  are quantised per batch at run time, so no calibration data is needed);
- the tokenizer, `config.json` and `tokenize_config.json`, so that predict cuts a review
  as training did;
- `export.json`: how it was made (opset, fused operators, sizes) and how far the fp32
  graph's logits are from torch's on seeded probe inputs (the stage stops when they are
  further apart than `export_onnx.tolerance`).

Needs the optional extra `onnx` (`pip install -e '.[onnx]'`).
"""

from __future__ import annotations

import logging

from imdb_sentiment.core.atomic import atomic_path, json_text
from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import load_params, load_section
from imdb_sentiment.inference.onnx_backend import (
    ONNX_DIR,
)
from imdb_sentiment.inference.onnx_export import MODEL_DIR, RECORD_FILE, ExportParams, export

log = logging.getLogger("imdb_sentiment.export_onnx")


def main() -> None:
    params = load_section(load_params(), "export_onnx", ExportParams)
    with atomic_path(ONNX_DIR) as tmp:
        record = export(MODEL_DIR, tmp, params)
        (tmp / RECORD_FILE).write_text(json_text(record), encoding="utf-8")
    log.info("wrote %s: %s", ONNX_DIR, record)


if __name__ == "__main__":
    run_stage(main)
