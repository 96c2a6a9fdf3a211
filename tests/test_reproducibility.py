"""Reproducibility: two forced runs of the whole tiny pipeline give the same dvc.lock hash for
every out and the same metrics.

The first forced run is the shared reference run (dvc_helpers.reference_run): `dvc repro`
in a new repository with no dvc.lock and an empty cache runs every stage from nothing,
exactly what `dvc repro -f` does. The second is `dvc repro -f` in a clone of it, in
another folder with its own empty cache, so nothing can be reused from the first run and
an output that depended on where the repository lives would show up too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_helpers import (
    Reference,
    assert_same_run,
    clone,
    dvc_status,
    lock_record,
    pipeline_stages,
    snapshot,
)
from helpers import dvc

pytestmark = pytest.mark.e2e


def test_two_forced_runs_give_identical_lock_and_metrics(
    reference: Reference, tmp_path: Path
) -> None:
    repo = clone(reference.repo, tmp_path / "again")
    forced = dvc(repo, "repro", "-f")
    for stage in pipeline_stages(repo):
        assert f"Running stage '{stage}'" in forced.stdout, forced.stdout

    rerun = snapshot(repo)
    assert_same_run(rerun, reference.snapshot, "second forced run")

    # The whole lock, deps and params included, is what was committed; only the hashes of
    # metrics files that hold timing keys may differ (none do when the stages leave
    # timings out of their metrics).
    timed = reference.snapshot.timed()
    assert lock_record(repo, timed) == lock_record(reference.repo, timed)
    assert dvc_status(repo) == {}
