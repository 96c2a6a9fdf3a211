"""Experiments: every param is declared by a stage, so `dvc exp run -S key=value` reruns
what reads it (and nothing else), and the stages read the value as DVC writes it back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from dvc_helpers import (
    Reference,
    clone_with_cache,
    lock_outs,
    pipeline_stages,
    stage_specs,
)
from helpers import PROJECT_ROOT, dvc

from imdb_sentiment.core.params import COMMAND_SECTIONS, load_params

pytestmark = pytest.mark.e2e


def _leaf_keys(params: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        keys += _leaf_keys(value, f"{dotted}.") if isinstance(value, dict) else [dotted]
    return keys


def _declared_params(repo: Path) -> dict[str, list[str]]:
    """{stage: the params.yaml keys or sections it declares}."""
    return {stage: spec["params"] for stage, spec in stage_specs(repo).items()}


def test_every_param_is_read_by_a_stage() -> None:
    # `dvc exp run -S key=value` only reruns stages that declare the key (or its section)
    # in dvc.yaml: a param no stage declares would change nothing. The commands' own
    # sections are read by predict and score, never by a stage.
    declared = _declared_params(PROJECT_ROOT)
    covers = [key for keys in declared.values() for key in keys] + list(COMMAND_SECTIONS)
    orphans = [
        key
        for key in _leaf_keys(load_params(PROJECT_ROOT / "params.yaml"))
        if not any(key == c or key.startswith(f"{c}.") for c in covers)
    ]
    assert not orphans, f"params no stage in dvc.yaml declares: {orphans}"


def test_exp_run_sets_a_param_that_reruns_only_what_reads_it(
    reference: Reference, tmp_path: Path
) -> None:
    repo = clone_with_cache(reference.repo, tmp_path / "repo")
    declared = _declared_params(repo)
    assert "train_linear" in declared["train_linear"], declared

    run = dvc(repo, "exp", "run", "-n", "c-5e-5", "-S", "train_linear.C=5e-5")
    # Only what reads `train_linear` (and its own evaluate) reruns; every other stage,
    # the other models' evaluations included, comes from the cache.
    ran = set(re.findall(r"Running stage '([^']+)'", run.stdout))
    assert ran == {"train_linear", "evaluate@linear"}, run.stdout
    assert set(pipeline_stages(repo)) > ran | {"evaluate@rf", "evaluate@distilbert"}

    # DVC writes the number as YAML 1.2 does, and the stages read it back as a float.
    assert "C: 5e-05" in (repo / "params.yaml").read_text(encoding="utf-8")
    c_value = load_params(repo / "params.yaml")["train_linear"]["C"]
    assert isinstance(c_value, float) and c_value == 5e-05
    # It took effect: another model than the reference run's (C 1.0).
    assert lock_outs(repo)["models/linear"] != reference.snapshot.lock["models/linear"]
