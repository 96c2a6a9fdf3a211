"""bench/gpu_check.py can only be timed on a GPU, which CI never has: this runs its tiny
mode on the CPU so that the script the GPU check depends on keeps working."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import PROJECT_ROOT, run

pytestmark = pytest.mark.e2e


def test_gpu_check_runs_both_ways_and_prints_json_last() -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--tiny",
            "--reviews",
            "48",
            "--train-steps",
            "2",
            "--batch-size",
            "16",
        ],
        cwd=PROJECT_ROOT,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["reviews"] == 48
    for key in (
        "train_reference_samples_per_s",
        "train_project_samples_per_s",
        "eval_reference_reviews_per_s",
        "eval_project_reviews_per_s",
    ):
        assert figures[key] > 0, key
    # Same fp32 model on a CPU both ways: the same labels.
    assert figures["eval_same_label_share"] == 1.0
