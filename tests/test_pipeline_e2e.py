"""End to end: the real `dvc repro` over synthetic aclImdb reviews and a tiny DistilBERT,
in a temporary Git repository holding the project.

The first run from nothing is the session's reference run (the `reference` fixture in
conftest), checked here once; what runs `dvc` again does so in a clone of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from dvc_helpers import (
    Reference,
    clone,
    clone_with_cache,
    dvc_status,
    locked_stages,
    pipeline_stages,
)
from helpers import dvc, set_params

pytestmark = pytest.mark.e2e


def test_first_dvc_repro_runs_every_stage(reference: Reference) -> None:
    repo = reference.repo
    stages = pipeline_stages(repo)
    assert stages[:2] == ["prepare", "tokenize"]
    for stage in stages:
        assert f"Running stage '{stage}'" in reference.log, reference.log

    prepared = {
        split: pd.read_parquet(repo / "data/prepared" / f"{split}.parquet")
        for split in ("train", "validation", "test")
    }
    # conftest writes 48 train and 32 test reviews; TINY_PARAMS holds out a quarter.
    assert {split: len(frame) for split, frame in prepared.items()} == {
        "train": 36,
        "validation": 12,
        "test": 32,
    }
    assert (repo / "data/tokenized/hf/dataset_dict.json").exists()
    tokenize_summary = json.loads((repo / "summaries/tokenize.json").read_text())
    assert tokenize_summary["test"]["reviews"] == 32
    assert locked_stages(repo) == set(stages)

    # Timings are outs whose bytes change from run to run: comparisons of runs leave out
    # exactly those files (their other keys still compare), and no metric holds a time.
    timings = {path for path in reference.snapshot.lock if path.startswith("timings/")}
    assert timings, sorted(reference.snapshot.lock)
    assert reference.snapshot.timed() == timings


def test_second_dvc_repro_skips_every_stage(reference: Reference, tmp_path: Path) -> None:
    # Metrics live in Git: in a clone with no DVC cache, `dvc metrics show` reads them;
    # timings are kept in Git too but are no metric.
    git_only = clone(reference.repo, tmp_path / "git-only")
    assert not (git_only / ".dvc" / "cache").exists()
    shown = dvc(git_only, "metrics", "show", "--json").stdout
    assert "metrics/test/distilbert.json" in shown and "metrics/validation/rf.json" in shown
    assert "timings/" not in shown and "summaries/" not in shown

    repo = clone_with_cache(reference.repo, tmp_path / "repo")
    stages = pipeline_stages(repo)
    second = dvc(repo, "repro")
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout, second.stdout
    assert "Running stage" not in second.stdout
    assert dvc(repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_param_change_reruns_only_what_depends_on_it(reference: Reference, tmp_path: Path) -> None:
    repo = clone_with_cache(reference.repo, tmp_path / "repo")
    set_params(repo / "params.yaml", {"tokenize.truncation": "head"})
    assert set(dvc_status(repo)) == {"tokenize"}
    rerun = dvc(repo, "repro", "tokenize")
    assert "Stage 'prepare' didn't change, skipping" in rerun.stdout
    assert "Running stage 'tokenize'" in rerun.stdout
