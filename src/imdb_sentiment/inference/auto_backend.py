"""`--backend auto`: the fastest way to run the fine-tuned transformer on this machine.

On a GPU that is torch (bf16 where the GPU has it). On a CPU with bf16 units (AMX,
AVX512-BF16) it is torch in bf16, with no probe: on a 2-core Xeon with AMX, bf16 scored
real reviews faster than the int8 ONNX copy (docs/serving.md), while a short probe of a
few rows had int8 ahead (bf16's kernels pay off on whole batches of real length). On another CPU
it depends on the CPU: the int8 copy ran 1.52x torch fp32 on one AVX2 EPYC and 0.85x on an
older one. So there the choice is measured: both score the same seeded batch a few times,
in turn, and int8 is taken only when it is clearly faster (it agrees with torch on about
99% of the labels, not all). The answer is kept per machine and model shape in a small
cache file, so the probe runs once, not per command. int8 is a candidate only where its
copy was exported from these very weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from imdb_sentiment.core.atomic import write_json
from imdb_sentiment.inference.model_folder import open_transformer_folder
from imdb_sentiment.inference.onnx_backend import INT8_FILE, OnnxScorer
from imdb_sentiment.inference.onnx_export import RECORD_FILE, WEIGHTS_FILE, weights_sha256
from imdb_sentiment.inference.precision import cpuinfo_flags, uses_bf16
from imdb_sentiment.inference.torch_backend import TorchScorer, pick_device

log = logging.getLogger("imdb_sentiment.inference")

CACHE_DIR_ENV = "IMDB_SENTIMENT_CACHE_DIR"
CACHE_NAME = "backend-choice.json"
# The probe: reviews x tokens of seeded ids, scored this many times by each backend.
PROBE_SHAPE = (16, 128)
PROBE_ROUNDS = 3
# int8 must beat torch by this much to be chosen.
INT8_MARGIN = 1.1
# The CPU features that decide which is faster.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cache_file() -> Path:
    """Where the choices are kept: $IMDB_SENTIMENT_CACHE_DIR, else the user's cache folder."""
    folder = os.environ.get(CACHE_DIR_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "imdb-sentiment"
    )
    return Path(folder) / CACHE_NAME


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(config: Any) -> str:
    """What the answer depends on: the CPU, the libraries, the model's shape."""
    import onnxruntime
    import torch

    flags = sorted(set(SPEED_FLAGS) & cpuinfo_flags())
    shape = [getattr(config, name, None) for name in ("model_type", "hidden_size", "dim")]
    layers = [getattr(config, name, None) for name in ("num_hidden_layers", "n_layers")]
    described = [cpu_name(), flags, torch.__version__, onnxruntime.__version__, shape, layers]
    return hashlib.sha256(json.dumps(described, default=str).encode()).hexdigest()[:16]


def int8_copy(model_dir: Path, onnx_dir: Path) -> bool:
    """Whether `onnx_dir` holds an int8 copy exported from `model_dir`'s weights, and ONNX
    Runtime is installed to run it."""
    try:
        import onnxruntime  # noqa: F401

        record = json.loads((onnx_dir / RECORD_FILE).read_text(encoding="utf-8"))
        same = record.get("source_sha256") == weights_sha256(model_dir)
    except (ImportError, OSError, ValueError, AttributeError):
        return False
    return same and (onnx_dir / INT8_FILE).is_file() and (model_dir / WEIGHTS_FILE).is_file()


def probe_seconds(scorer: Any, input_ids: list[list[int]]) -> float:
    start = time.perf_counter()
    scorer.logits(input_ids, desc=None)
    return time.perf_counter() - start


def measure(model_dir: Path, onnx_dir: Path) -> dict[str, float]:
    """Seconds of torch (as it runs here) and of int8 on the probe batch: the fastest of
    `PROBE_ROUNDS` rounds each, taken in turn after one warm-up round."""
    import numpy as np

    torch_scorer = TorchScorer(open_transformer_folder(model_dir, "config.json"), device="cpu")
    int8_scorer = OnnxScorer(open_transformer_folder(onnx_dir, INT8_FILE))
    rows, tokens = PROBE_SHAPE
    tokens = min(tokens, torch_scorer.folder.cut.max_length)
    rng = np.random.default_rng(0)
    vocab = int(torch_scorer.folder.config.vocab_size)
    ids = [rng.integers(1, vocab, size=tokens).tolist() for _ in range(rows)]
    timings: dict[str, list[float]] = {"torch": [], "onnx-int8": []}
    for round_ in range(PROBE_ROUNDS + 1):
        for name, scorer in (("torch", torch_scorer), ("onnx-int8", int8_scorer)):
            seconds = probe_seconds(scorer, ids)
            if round_:
                timings[name].append(seconds)
    return {name: min(values) for name, values in timings.items()}


def choose_backend(model_dir: Path, onnx_dir: Path, device: str = "auto") -> str:
    """`torch` or `onnx-int8` for `--backend auto` (see the module's docstring)."""
    if pick_device(device, "--device").type != "cpu" or not int8_copy(model_dir, onnx_dir):
        return "torch"
    import torch

    if uses_bf16(torch.device("cpu"), bf16=True):
        return "torch"
    folder = open_transformer_folder(model_dir, "config.json")
    key = machine_key(folder.config)
    path = cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    choice = cached.get(key)
    if not isinstance(choice, dict) or choice.get("backend") not in ("torch", "onnx-int8"):
        seconds = measure(model_dir, onnx_dir)
        ratio = seconds["torch"] / seconds["onnx-int8"]
        backend = "onnx-int8" if ratio >= INT8_MARGIN else "torch"
        choice = {"backend": backend, "int8_vs_torch": round(ratio, 3), "cpu": cpu_name()}
        log.info("--backend auto: %s on this CPU (int8 ran %.2fx torch)", backend, ratio)
        try:
            write_json(path, {**cached, key: choice})
        except OSError as exc:  # a read-only home: measure again next time
            log.debug("cannot keep the backend choice in %s (%s)", path, exc)
    return choice["backend"]
