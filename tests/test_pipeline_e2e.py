"""End to end: the real `dvc repro` over synthetic aclImdb reviews and a tiny DistilBERT,
in a temporary Git repository holding the project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import dvc, set_params
from ruamel.yaml import YAML

pytestmark = pytest.mark.e2e


def pipeline_stages(repo: Path) -> list[str]:
    return list(YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"])


def test_dvc_repro_runs_every_stage_then_skips_them(project_repo: Path) -> None:
    stages = pipeline_stages(project_repo)
    assert stages[:2] == ["prepare", "tokenize"]

    dag = dvc(project_repo, "dag").stdout
    for stage in stages:
        assert stage in dag

    first = dvc(project_repo, "repro")
    for stage in stages:
        assert f"Running stage '{stage}'" in first.stdout, first.stdout

    prepared = {
        split: pd.read_parquet(project_repo / "data/prepared" / f"{split}.parquet")
        for split in ("train", "validation", "test")
    }
    # conftest writes 48 train and 32 test reviews; TINY_PARAMS holds out a quarter.
    assert {split: len(frame) for split, frame in prepared.items()} == {
        "train": 36,
        "validation": 12,
        "test": 32,
    }
    assert (project_repo / "data/tokenized/hf/dataset_dict.json").exists()
    tokenize_summary = json.loads((project_repo / "metrics/tokenize.json").read_text())
    assert tokenize_summary["test"]["reviews"] == 32

    lock = YAML(typ="safe").load((project_repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(stages)

    # Metrics live in Git: `dvc metrics show` reads them without the cache.
    shown = dvc(project_repo, "metrics", "show", "--json").stdout
    assert "rows" in shown

    second = dvc(project_repo, "repro")
    for stage in stages:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout, second.stdout
    assert "Running stage" not in second.stdout
    assert dvc(project_repo, "status").stdout.strip() == "Data and pipelines are up to date."


def test_param_change_reruns_only_what_depends_on_it(project_repo: Path) -> None:
    dvc(project_repo, "repro", "tokenize")
    set_params(project_repo / "params.yaml", {"tokenize.truncation": "head"})
    status = dvc(project_repo, "status").stdout
    assert "tokenize" in status and "prepare" not in status
    rerun = dvc(project_repo, "repro", "tokenize")
    assert "Stage 'prepare' didn't change, skipping" in rerun.stdout
    assert "Running stage 'tokenize'" in rerun.stdout
