"""The two tiers: `make test-fast` runs the tests not marked `e2e`, and no such test starts a
process of the pipeline (conftest's guard fails it); `make test` runs everything."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import PROJECT_ROOT, pipeline_process

STAGE, COMMAND = "imdb_sentiment.stages.tokenize", "imdb_sentiment.cli.predict"
TORCHRUN = "torch.distributed.run"


@pytest.mark.parametrize(
    ("args", "started"),
    [
        (["dvc", "repro"], "dvc"),
        (["/usr/bin/make", "quick"], "make"),
        ([sys.executable, "-m", "dvc", "exp", "run"], "python -m dvc"),
        (
            [sys.executable, "-m", "imdb_sentiment.stages.prepare"],
            "python -m imdb_sentiment.stages.prepare",
        ),
        (
            ["python", "-m", "imdb_sentiment.cli.predict", "x"],
            "python -m imdb_sentiment.cli.predict",
        ),
        (
            [sys.executable, "-m", "torch.distributed.run", "-m", "x"],
            "python -m torch.distributed.run",
        ),
        ("imdb-score reviews/ --output out", "imdb-score"),
        (["bash", "scripts/runs.sh"], "scripts/runs.sh"),
        ([sys.executable, "scripts/report.py", "main"], "scripts/report.py"),
        (["git", "init"], None),
        ([sys.executable, "scripts/params_reference.py", "--check"], None),
        ([sys.executable, "-c", "print(1)"], None),
    ],
)
def test_pipeline_processes_are_told_apart(args: list[str] | str, started: str | None) -> None:
    assert pipeline_process(args) == started


def test_an_unmarked_test_cannot_start_dvc() -> None:
    with pytest.raises(pytest.fail.Exception, match="starts `dvc` but is not marked e2e"):
        subprocess.run(["dvc", "--version"], capture_output=True)


def test_make_test_fast_runs_the_tests_not_marked_e2e() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert 'test-fast: install-dev\n\tpytest -m "not e2e"\n' in makefile
