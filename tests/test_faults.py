"""Faults: a stage killed mid-way.

`dvc repro` runs in its own process group in a fresh project (a clone reset to the commit
before any run, in another folder, with its own empty DVC cache) and the whole group gets
SIGKILL once a stage is busy: while its output is half written (the hidden
`.NAME.tmp-RANDOM` folder of atomic_path exists) or, for training, once it has left a
complete checkpoint. That happens during `tokenize`, then (second `dvc repro`) during
training; a third `dvc repro` must finish the pipeline. Every stage has then run once from
nothing, as in a forced run, and the result must be the uninterrupted reference run's
(dvc_helpers.reference_run) byte for byte: the same outs, metrics and dvc.lock. That is
also the suite's reproducibility test: two runs from nothing, in two folders, agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_helpers import (
    Reference,
    assert_same_run,
    clone,
    consumed_outs,
    declared_outs,
    dvc_status,
    file_digests,
    kill_when,
    lock_record,
    locked_stages,
    snapshot,
    start_dvc,
    tmp_siblings,
    training_stage,
)
from helpers import dvc, git

pytestmark = pytest.mark.e2e


def test_sigkill_during_tokenize_and_training_then_repro_finishes_as_the_reference_run(
    reference: Reference, tmp_path: Path
) -> None:
    # One repository takes both kills in turn (saving a whole pipeline run): `dvc repro`
    # killed in tokenize, `dvc repro` again killed in training, then `dvc repro` to the end.
    repo = clone(reference.repo, tmp_path / "repo", commit=reference.project_commit)
    assert not (repo / "dvc.lock").exists()
    leftovers = []
    for attempt, stage in enumerate(("tokenize", training_stage(repo))):
        leftovers += _kill_during(stage, repo, reference, tmp_path / f"repro-{attempt}.log")

    rerun = dvc(repo, "repro")
    assert f"Running stage '{training_stage(repo)}'" in rerun.stdout, rerun.stdout
    assert_same_run(snapshot(repo), reference.snapshot, "repro after the kills")
    # The whole lock, deps and params included, is the reference's; only the hashes of
    # the timing files (bytes that change from run to run, no metric) may differ.
    timed = reference.snapshot.timed()
    assert lock_record(repo, timed) == lock_record(reference.repo, timed)
    assert dvc_status(repo) == {}
    # What a killed run left beside an output (under a hidden name that Git and DVC ignore,
    # never inside an out) is removed when the rerun writes that output again.
    assert leftovers
    assert [path for path in leftovers if path.exists()] == []
    assert ".tmp-" not in git(repo, "status", "--porcelain", "--untracked-files=all").stdout


def _kill_during(stage: str, repo: Path, reference: Reference, log: Path) -> list[Path]:
    """Start `dvc repro`, SIGKILL its process group while `stage` is busy, check that
    nothing claims the stage finished; return the half-written leftovers."""
    outs = list(declared_outs(repo)[stage])
    seen_start = False

    def stage_is_busy() -> bool:
        nonlocal seen_start
        # Only this stage's own files count, so wait until dvc has started it.
        seen_start = seen_start or f"Running stage '{stage}'" in log.read_text(encoding="utf-8")
        if not seen_start:
            return False
        if any(tmp_siblings(repo, out) for out in outs):
            return True  # writing its output (atomic_path's hidden sibling)
        # Training: a complete checkpoint (the Trainer writes trainer_state.json last).
        return any((repo / "checkpoints").glob("*/checkpoint-*/trainer_state.json"))

    kill_when(start_dvc(repo, "repro", log=log), stage_is_busy, log)

    # Nothing claims the stage finished: dvc.lock has no entry for it and `dvc status` says
    # it must run. Whatever another stage reads from it is absent or complete, never half
    # written (a live log such as DVCLive's may be partial: no stage reads it).
    assert stage not in locked_stages(repo), stage
    assert stage in dvc_status(repo), stage
    for out in consumed_outs(repo) & set(outs):
        if (repo / out).exists():
            assert file_digests(repo / out) == reference.snapshot.files[out], out
    leftovers = [path for out in outs for path in tmp_siblings(repo, out)]
    if stage == "tokenize":
        assert leftovers, "the kill should have caught tokenize writing its output"
    return leftovers
