"""The benchmarks run on the project's current code: each one that fits a small run is run
here on synthetic reviews and the tiny model (the real ones read IMDB_DATA and
IMDB_BENCH_MODEL), and must end with its figures as one JSON object on the last line.
bench/gpu_check.sh has its own test (test_gpu_check.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import PROJECT_ROOT, run, write_parquet_source

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def run_bench(name: str, data: Path, model: Path, *args: str) -> dict[str, Any]:
    result = run(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=PROJECT_ROOT,
        timeout=280,
        extra_env={"IMDB_DATA": str(data), "IMDB_BENCH_MODEL": str(model)},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet_source(tmp_path_factory.mktemp("bench") / "imdb", n_train=120, n_test=40)


def test_classical_bench_runs_the_stages_and_fits_both_models(
    data: Path, tiny_model_dir: Path
) -> None:
    """prepare and tokenize run as the pipeline's own modules, then each model is fitted
    in a process of its own and scored on every test review."""
    figures = run_bench("classical", data, tiny_model_dir, "-S", "train_rf.n_estimators=10")
    assert set(figures) == {"rf", "linear"}
    for name, result in figures.items():
        assert 0.0 <= result["accuracy"] <= 1.0 and result["fit_s"] >= 0, name
        assert result["peak_mem_gb"] > 0, name


def test_tokenize_speed_bench_times_the_stages_against_the_recipe(
    data: Path, tiny_model_dir: Path
) -> None:
    figures = run_bench("tokenize_speed", data, tiny_model_dir, "--max-length", "64")
    assert figures["reviews"] == 160  # every train and test review
    assert figures["tokenize_vs_hf_recipe_ratio"] > 0
    assert 0.0 <= figures["share_over_max_length"] <= 1.0


def test_eval_speed_bench_scores_the_same_reviews_both_ways(
    data: Path, tiny_model_dir: Path
) -> None:
    figures = run_bench("eval_speed", data, tiny_model_dir, "--reviews", "24")
    assert figures["reference_reviews_per_s"] > 0 and figures["project_reviews_per_s"] > 0
    ratio = figures["project_reviews_per_s"] / figures["reference_reviews_per_s"]
    assert figures["ratio"] == pytest.approx(ratio, abs=0.01)
    assert isinstance(figures["same_predictions"], bool)


def test_cpu_inference_bench_fine_tunes_once_then_scores_every_way(
    data: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """bench.finetune's training (into --cache), the int8 export beside it, then the
    reference, torch fp32, bf16, int8 and auto, each on the same reviews."""
    cache = tmp_path / "finetuned"
    figures = run_bench(
        "cpu_inference", data, tiny_model_dir, "--cache", str(cache), "--reviews", "24"
    )
    ways = ("reference", "torch_fp32", "torch_bf16", "onnx_int8", "auto")
    assert all(figures[way]["reviews_per_s"] > 0 for way in ways), figures
    assert figures["auto"]["backend"] in ("torch_fp32", "torch_bf16", "onnx_int8")
    assert (cache / "model.safetensors").is_file()
