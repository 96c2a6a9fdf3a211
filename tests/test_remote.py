"""Sharing through a DVC remote: push after the reference run, then a fresh clone with an
empty cache pulls and gets the same models, data and metrics, byte for byte.

Every remote lives on this machine: a local folder (the project's default remote, as
committed in .dvc/config), and moto's S3 server on 127.0.0.1 on a free port, started and
stopped here. Every out is pushed, so the clone's plain `dvc pull` is complete and
`dvc status` clean at once. Should an out be marked `push: false` in dvc.yaml (say, the
tokenized data), it is not in the remote by design: the clone then pulls with
`--allow-missing`, `dvc status` names exactly those outs, and `dvc repro` rebuilds them
without retraining anything, after which `dvc status` is clean and every out equals the
reference run's.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dvc_helpers import (
    S3_CREDENTIALS,
    Reference,
    S3Server,
    Snapshot,
    assert_same_run,
    clone,
    clone_with_cache,
    declared_outs,
    dvc_status,
    no_aws_profile,
    pipeline_stages,
    s3_server,
    snapshot,
    unpushed_outs,
)
from helpers import PROJECT_ROOT, dvc, git, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS settings of the machine running the tests reach dvc: only the test's own."""
    no_aws_profile(monkeypatch, tmp_path)
    return monkeypatch


def add_s3_remote(repo: Path, s3: S3Server, bucket: str) -> None:
    """Configure the team remote as a user would: URL and endpoint committed, the
    credentials only in .dvc/config.local (git-ignored by DVC)."""
    dvc(repo, "remote", "add", "-d", "team", f"s3://{bucket}/imdb-sentiment")
    dvc(repo, "remote", "modify", "team", "endpointurl", s3.endpoint)
    dvc(repo, "remote", "modify", "--local", "team", "access_key_id", "testing")
    dvc(repo, "remote", "modify", "--local", "team", "secret_access_key", "testing")
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-q", "-m", "team remote")
    committed = git(repo, "show", "HEAD:.dvc/config").stdout
    assert s3.endpoint in committed
    assert "testing" not in committed and "secret" not in committed
    assert ".dvc/config.local" not in git(repo, "ls-files", ".dvc").stdout.split()


def check_fresh_clone_pulls(
    origin: Path, dest: Path, reference: Reference, rebuild: bool = True
) -> None:
    """Clone `origin` with an empty cache, pull, and compare with the reference run; with
    `rebuild`, also run `dvc repro` and check that `dvc status` is then clean."""
    repo = clone(origin, dest)
    assert not (repo / ".dvc" / "cache").exists()
    unpushed = unpushed_outs(repo)

    # Outs marked `push: false` are missing from the remote by design; with none, a plain
    # `dvc pull` must succeed.
    dvc(repo, "pull", *(["--allow-missing"] if unpushed else []))
    # Models, prepared data and metrics arrive byte-identical, nothing was run.
    assert_same_run(
        snapshot(repo, skip=unpushed),
        _without(reference, unpushed),
        "after dvc pull in a fresh clone",
    )
    # What `dvc status` still lists is, by design, only the outs that are not pushed: as
    # outs of the stage that makes them and as deps of the stages that read them.
    status = dvc_status(repo)
    changed_paths = {
        path
        for changes in status.values()
        for change in changes
        for paths in change.values()
        for path in paths
    }
    assert all(
        any(path == out or path.startswith(f"{out}/") for out in unpushed) for path in changed_paths
    ), status
    owners = {stage for stage, outs in declared_outs(repo).items() if set(outs) & unpushed}
    assert owners <= set(status), status
    if not rebuild:
        return

    # `dvc repro` rebuilds only those, byte for byte, so nothing downstream is retrained.
    rebuilt = dvc(repo, "repro")
    for stage in pipeline_stages(repo):
        ran = f"Running stage '{stage}'" in rebuilt.stdout
        assert ran == (stage in owners), (stage, rebuilt.stdout)
    assert_same_run(snapshot(repo), reference.snapshot, "after dvc pull and dvc repro")
    assert dvc_status(repo) == {}


def _without(reference: Reference, paths: set[str]) -> Snapshot:
    full = reference.snapshot
    return Snapshot(
        lock={k: v for k, v in full.lock.items() if k not in paths},
        files={k: v for k, v in full.files.items() if k not in paths},
        metrics=full.metrics,
        raw_metrics=full.raw_metrics,
    )


def test_s3_remote_round_trip(
    reference: Reference, tmp_path: Path, s3: S3Server, clean_aws_env: pytest.MonkeyPatch
) -> None:
    bucket = s3.create_bucket("round-trip")
    origin = clone_with_cache(reference.repo, tmp_path / "origin")
    add_s3_remote(origin, s3, bucket)
    dvc(origin, "push")
    keys = s3.keys(bucket)
    assert keys and all(key.startswith("imdb-sentiment/files/md5/") for key in keys)
    # Cache and remote agree (`dvc status -c` leaves `push: false` outs out, as push does).
    assert dvc_status(origin, "-c") == {}

    # The other machine has no .dvc/config.local: its credentials come from the environment.
    for key, value in S3_CREDENTIALS.items():
        clean_aws_env.setenv(key, value)
    check_fresh_clone_pulls(origin, tmp_path / "clone", reference)


def test_local_remote_round_trip(reference: Reference, tmp_path: Path) -> None:
    # The project's default remote is a folder beside the repository (committed in
    # .dvc/config, relative to it), so two clones side by side on one machine share it with
    # no setup: a trial; a team sets its own remote (the next test, and test_quickstart).
    origin = clone_with_cache(reference.repo, tmp_path / "origin")
    assert dvc(origin, "remote", "default").stdout.strip() == "local"
    storage = tmp_path / "imdb-sentiment-dvc-storage"
    dvc(origin, "push")
    assert (storage / "files" / "md5").is_dir()
    check_fresh_clone_pulls(origin, tmp_path / "clone", reference)


def test_a_clone_elsewhere_is_told_which_remote_it_cannot_reach(
    reference: Reference, tmp_path: Path
) -> None:
    # The default remote is relative to the clone: one in another parent folder finds no
    # folder there. `make pull` (scripts/remote.py) ends DVC's message with one line naming
    # the remote and the folder it looked for.
    origin = clone_with_cache(reference.repo, tmp_path / "alice" / "imdb-sentiment")
    dvc(origin, "push")
    teammate = clone(origin, tmp_path / "bob" / "work" / "imdb-sentiment")
    (teammate / "scripts").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts" / "remote.py", teammate / "scripts" / "remote.py")
    pulled = run([sys.executable, "scripts/remote.py", "pull"], cwd=teammate, check=False)
    assert pulled.returncode != 0
    looked_for = tmp_path / "bob" / "work" / "imdb-sentiment-dvc-storage"
    assert pulled.stderr.strip().splitlines()[-1] == (
        f"error: dvc pull: remote 'local' is the folder {looked_for}, which this clone cannot "
        "reach: set the team's remote, `dvc remote add -d team <url>` (README: Sharing)"
    )
