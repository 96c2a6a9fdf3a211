"""`--backend auto` (inference/auto_backend.py): which backend it picks, and that it measures
once per machine. The timings are stubbed: what is tested is the choice made from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imdb_sentiment.inference import auto_backend
from imdb_sentiment.inference.auto_backend import CACHE_DIR_ENV, choose_backend
from imdb_sentiment.inference.onnx_backend import INT8_FILE
from imdb_sentiment.inference.onnx_export import RECORD_FILE, weights_sha256
from imdb_sentiment.text.cutting import TOKENIZE_CONFIG_NAME, CutParams

pytest.importorskip("onnxruntime")


@pytest.fixture
def folders(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A fine-tuned model folder, an int8 copy exported from its weights (the graph itself is
    never run: the timings are stubbed), and a cache folder of the test's own."""
    model_dir = tmp_path / "distilbert"
    shutil.copytree(tiny_model_dir, model_dir)
    cut = CutParams(max_length=64).model_dump()
    (model_dir / TOKENIZE_CONFIG_NAME).write_text(json.dumps(cut), encoding="utf-8")
    onnx_dir = tmp_path / "distilbert-onnx"
    onnx_dir.mkdir()
    (onnx_dir / INT8_FILE).write_bytes(b"graph")
    record = {"source_sha256": weights_sha256(model_dir)}
    (onnx_dir / RECORD_FILE).write_text(json.dumps(record), encoding="utf-8")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return model_dir, onnx_dir


def stub_timings(monkeypatch: pytest.MonkeyPatch, seconds: dict[str, float]) -> list[int]:
    """Make the probe report `seconds`; the list counts how often it ran."""
    calls: list[int] = []

    def measure(model_dir: Path, onnx_dir: Path) -> dict[str, float]:
        calls.append(1)
        return seconds

    monkeypatch.setattr(auto_backend, "measure", measure)
    return calls


def cpu_with_bf16(monkeypatch: pytest.MonkeyPatch, has_it: bool) -> None:
    monkeypatch.setattr(auto_backend, "uses_bf16", lambda device, bf16: has_it and bf16)


def test_int8_is_chosen_where_it_is_clearly_faster_and_the_probe_runs_once(
    folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_with_bf16(monkeypatch, False)
    calls = stub_timings(monkeypatch, {"torch": 1.0, "onnx-int8": 0.5})
    assert choose_backend(*folders, device="cpu") == "onnx-int8"
    assert choose_backend(*folders, device="cpu") == "onnx-int8"
    assert len(calls) == 1  # the second answer came from the cache file
    [choice] = json.loads(auto_backend.cache_file().read_text()).values()
    assert choice["backend"] == "onnx-int8" and choice["int8_vs_torch"] == 2.0


@pytest.mark.parametrize(("int8_seconds", "expected"), [(0.95, "torch"), (0.9, "onnx-int8")])
def test_int8_must_beat_torch_by_the_margin(
    folders, monkeypatch: pytest.MonkeyPatch, int8_seconds: float, expected: str
) -> None:
    """int8 agrees with torch on about 99% of the labels, not all: a few percent of speed
    is not worth it (INT8_MARGIN = 1.1)."""
    cpu_with_bf16(monkeypatch, False)
    stub_timings(monkeypatch, {"torch": 1.0, "onnx-int8": int8_seconds})
    assert choose_backend(*folders, device="cpu") == expected


def test_a_cpu_with_bf16_units_runs_torch_without_a_probe(
    folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_with_bf16(monkeypatch, True)
    calls = stub_timings(monkeypatch, {"torch": 1.0, "onnx-int8": 0.1})
    assert choose_backend(*folders, device="cpu") == "torch"
    assert calls == []


def test_int8_exported_from_other_weights_is_never_a_candidate(
    folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, onnx_dir = folders
    cpu_with_bf16(monkeypatch, False)
    calls = stub_timings(monkeypatch, {"torch": 1.0, "onnx-int8": 0.1})
    (onnx_dir / RECORD_FILE).write_text(json.dumps({"source_sha256": "0" * 64}))
    assert choose_backend(model_dir, onnx_dir, device="cpu") == "torch"
    (onnx_dir / RECORD_FILE).write_text(json.dumps({"source_sha256": weights_sha256(model_dir)}))
    (onnx_dir / INT8_FILE).unlink()
    assert choose_backend(model_dir, onnx_dir, device="cpu") == "torch"
    assert calls == []


def test_a_damaged_cache_file_is_measured_again(folders, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_with_bf16(monkeypatch, False)
    calls = stub_timings(monkeypatch, {"torch": 1.0, "onnx-int8": 2.0})
    cache = auto_backend.cache_file()
    cache.parent.mkdir(parents=True)
    for damaged in ("not json", "[1, 2]", json.dumps({"key": {"backend": "gpu"}})):
        cache.write_text(damaged)
        assert choose_backend(*folders, device="cpu") == "torch"
    assert len(calls) == 3
