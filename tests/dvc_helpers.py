"""Helpers for the sharing-and-trust tests: one reference run of the whole tiny pipeline
shared by every test that compares with it, snapshots of a repository's outputs, clones,
killing `dvc` mid-way, and an S3-compatible server (moto) on loopback.

The reference run is made once per test run, shared by the pytest-xdist workers (the
`reference` fixture in conftest, built with :func:`reference_run`): a fresh project
repository where `dvc repro` runs every stage from nothing, which is what a forced run
does, then committed so that clones get its `dvc.lock` and metrics.

Stages, outs, the lock and the cache layout are read through DVC's Python API
(`dvc.repo.Repo`), so the tests follow DVC's own reading of dvc.yaml and dvc.lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dvc.dependency.param import ParamsDependency
from dvc.dvcfile import load_file
from dvc.repo import Repo
from dvc.stage import PipelineStage
from helpers import dvc, git, make_project_repo, subprocess_env, write_aclimdb

from imdb_sentiment.core.atomic import MARKER

# Keys of JSON outs that measure time, not the model: a rerun changes them, so comparisons
# between runs leave them out (e.g. `fit_s`, `runtime_s` and `reviews_per_s` in
# timings/*.json, `train_runtime`, `train_samples_per_second`).
TIMING_KEY = re.compile(r"(_s|_per_s|_seconds|_per_second|runtime)$")
# Where atomic_path (core/atomic.py) writes before the rename: `.NAME.tmp-RANDOM/NAME`.
TMP_SIBLING = ".{name}.tmp-*"
PARAMS = "params.yaml"


# --------------------------------------------------------------------------- pipeline


@contextmanager
def open_dvc_repo(repo: Path) -> Iterator[Repo]:
    """DVC's Python API on `repo` (closed on exit)."""
    with Repo(str(repo)) as dvc_repo:
        yield dvc_repo


def _pipeline(dvc_repo: Repo) -> list[PipelineStage]:
    """The stages of the pipeline (dvc.yaml), in file order, with what dvc.lock records
    filled in (hashes of outs, values of params): `.dvc` files of `dvc add` left out."""
    return [stage for stage in dvc_repo.index.stages if isinstance(stage, PipelineStage)]


def pipeline_stages(repo: Path) -> list[str]:
    """The stages dvc.yaml declares, in file order."""
    with open_dvc_repo(repo) as dvc_repo:
        return [stage.name for stage in _pipeline(dvc_repo)]


def declared_outs(repo: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{stage: {out path: its flags (cache, push, persist)}} as dvc.yaml declares them."""
    with open_dvc_repo(repo) as dvc_repo:
        return {
            stage.name: {
                out.def_path: {"cache": out.use_cache, "push": out.can_push, "persist": out.persist}
                for out in stage.outs
            }
            for stage in _pipeline(dvc_repo)
        }


def stage_specs(repo: Path) -> dict[str, dict[str, Any]]:
    """{stage: {"cmd", "deps" (paths, params.yaml excluded), "params" (params.yaml keys or
    sections)}} as dvc.yaml declares them."""
    with open_dvc_repo(repo) as dvc_repo:
        specs = {}
        for stage in _pipeline(dvc_repo):
            params = [d for d in stage.deps if isinstance(d, ParamsDependency)]
            specs[stage.name] = {
                "cmd": stage.cmd,
                "deps": [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)],
                "params": [
                    key for d in params if Path(d.def_path).name == PARAMS for key in d.params
                ],
            }
        return specs


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/")


def consumed_outs(repo: Path) -> set[str]:
    """Outs that another stage reads (a dep equal to the out, inside it, or holding it)."""
    with open_dvc_repo(repo) as dvc_repo:
        stages = _pipeline(dvc_repo)
        deps = {
            stage.name: [
                dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)
            ]
            for stage in stages
        }
        return {
            out.def_path
            for stage in stages
            for out in stage.outs
            if any(
                _overlaps(out.def_path, dep)
                for other, paths in deps.items()
                if other != stage.name
                for dep in paths
            )
        }


def unpushed_outs(repo: Path) -> set[str]:
    """Outs marked `push: false`: `dvc push` leaves them out, so a clone rebuilds them."""
    return {
        path
        for outs in declared_outs(repo).values()
        for path, flags in outs.items()
        if not flags["push"]
    }


def training_stage(repo: Path) -> str:
    """The training stage the kill test interrupts: DistilBERT when dvc.yaml has it, else the
    first other training stage there is."""
    stages = pipeline_stages(repo)
    for name in ("train_distilbert", "train_linear", "train_rf"):
        if name in stages:
            return name
    trains = [stage for stage in stages if stage.startswith("train")]
    if not trains:
        pytest.fail(f"dvc.yaml declares no training stage yet: {stages}")
    return trains[0]


def lock_outs(repo: Path) -> dict[str, str]:
    """{out path: md5} for every out of every stage in dvc.lock (a folder's md5 ends in
    `.dir`, the name of its listing in the cache)."""
    with open_dvc_repo(repo) as dvc_repo:
        return {
            out.def_path: out.hash_info.value
            for stage in _pipeline(dvc_repo)
            for out in stage.outs
            if out.hash_info
        }


def lock_record(repo: Path, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """What dvc.lock records of each stage: the hashes of its deps and outs (but those in
    `skip`) and the values of its params."""
    with open_dvc_repo(repo) as dvc_repo:
        return {
            stage.name: {
                "deps": {dep.def_path: dep.hash_info.value for dep in stage.deps},
                "outs": {
                    out.def_path: out.hash_info.value
                    for out in stage.outs
                    if out.def_path not in skip
                },
            }
            for stage in _pipeline(dvc_repo)
        }


def locked_stages(repo: Path) -> set[str]:
    """The stages dvc.lock has an entry for (those that finished): none before a run."""
    with open_dvc_repo(repo) as dvc_repo:
        dvcfile = load_file(dvc_repo, os.path.join(dvc_repo.root_dir, "dvc.yaml"))
        return set(dvcfile.lockfile_contents.get("stages", {}))


def without_timing(value: Any) -> Any:
    """`value` (parsed JSON) without the keys that measure time (TIMING_KEY)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not TIMING_KEY.search(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def has_timing(value: Any) -> bool:
    return without_timing(value) != value


def file_digests(path: Path) -> dict[str, str]:
    """{relative path: sha256} of a file, or of every file under a folder (hidden ones too,
    so a stray half-written file inside an output would show up)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(item.relative_to(path)): hashlib.sha256(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


@dataclass(frozen=True)
class Snapshot:
    """What a run produced: dvc.lock's hash of every out, the bytes of every out, and its
    JSON file outs (parsed; `metrics` without timing keys, `raw_metrics` as written)."""

    lock: dict[str, str]
    files: dict[str, dict[str, str]]
    metrics: dict[str, Any]
    raw_metrics: dict[str, Any]

    def timed(self) -> set[str]:
        """JSON outs holding timing keys (timings/*.json): their bytes differ from run to
        run by design, so only `metrics` (timing keys removed) compares them."""
        return {path for path, raw in self.raw_metrics.items() if has_timing(raw)}

    def comparable_lock(self) -> dict[str, str]:
        return {path: md5 for path, md5 in self.lock.items() if path not in self.timed()}


def snapshot(repo: Path, skip: frozenset[str] | set[str] = frozenset()) -> Snapshot:
    """Snapshot `repo`'s outputs as dvc.lock records them (leaving out the paths in `skip`)."""
    lock = {path: md5 for path, md5 in lock_outs(repo).items() if path not in skip}
    files, metrics, raw_metrics = {}, {}, {}
    for path in lock:
        target = repo / path
        assert target.exists(), f"{path} is in dvc.lock but missing from {repo}"
        files[path] = file_digests(target)
        if target.suffix == ".json" and target.is_file():
            raw_metrics[path] = json.loads(target.read_text(encoding="utf-8"))
            metrics[path] = without_timing(raw_metrics[path])
    return Snapshot(lock=lock, files=files, metrics=metrics, raw_metrics=raw_metrics)


def assert_same_run(actual: Snapshot, expected: Snapshot, what: str) -> None:
    """Same outs, same lock hashes, same bytes, same metrics (timing keys aside)."""
    assert sorted(actual.lock) == sorted(expected.lock), f"{what}: other outs than expected"
    assert actual.metrics == expected.metrics, f"{what}: metrics differ"
    got, want = actual.comparable_lock(), expected.comparable_lock()
    differ = sorted(path for path in want if got.get(path) != want[path])
    assert not differ, f"{what}: dvc.lock hashes differ for {differ}"
    for path, digests in expected.files.items():
        if path in expected.timed():
            continue
        changed = sorted(
            name
            for name in digests.keys() | actual.files[path].keys()
            if digests.get(name) != actual.files[path].get(name)
        )
        assert not changed, f"{what}: bytes of {path} differ in {changed}"


def dvc_status(repo: Path, *args: str) -> dict[str, Any]:
    """`dvc status --json` as a dict: {} when the pipeline and data are up to date."""
    return json.loads(dvc(repo, "status", "--json", *args).stdout or "{}")


# --------------------------------------------------------------------------- repositories


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run every other run is compared with. Tests only read it: what
    runs `dvc` does so in a clone (`clone`, `clone_with_cache`)."""

    repo: Path
    # The commit with the project only (no dvc.lock, no outputs): clones reset to it start
    # from nothing, as a fresh project does.
    project_commit: str
    snapshot: Snapshot
    # What that first `dvc repro` from nothing printed.
    log: str


def reference_run(base: Path, model_dir: Path) -> Reference:
    """Run the whole tiny pipeline in a new project repository under `base` and commit the
    result (dvc.lock, metrics). Called once per test run, by the `reference` fixture
    (conftest)."""
    source = write_aclimdb(base / "source")
    repo = make_project_repo(base / "repo", source, model_dir)
    project_commit = git(repo, "rev-parse", "HEAD").stdout.strip()
    first = dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc repro")
    return Reference(repo, project_commit, snapshot(repo), first.stdout)


def clone(source: Path, dest: Path, commit: str | None = None) -> Path:
    """`git clone` of `source` at `dest` (optionally reset to `commit`): no DVC cache."""
    git(source.parent, "clone", "-q", str(source), str(dest))
    if commit:
        git(dest, "reset", "-q", "--hard", commit)
    return dest


def clone_with_cache(source: Path, dest: Path) -> Path:
    """A clone that also holds a copy of `source`'s DVC cache and has its outputs checked
    out, as the machine that ran the pipeline has."""
    clone(source, dest)
    shutil.copytree(cache_dir(source), cache_dir(dest))
    dvc(dest, "checkout")
    return dest


def cache_dir(repo: Path) -> Path:
    """`repo`'s local DVC cache folder (`dvc cache dir`)."""
    with open_dvc_repo(repo) as dvc_repo:
        return Path(dvc_repo.cache.local_cache_dir)


# --------------------------------------------------------------------------- killing dvc


def run_env(**extra: str) -> dict[str, str]:
    """The test subprocess environment (offline, this venv first) plus `extra`."""
    env = subprocess_env()
    # Unbuffered, so that `Running stage ...` reaches the log file when it is printed.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_dvc(
    repo: Path, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start `dvc ARGS` in its own process group (so it and the stage it runs can be killed
    together), output to `log`."""
    with open(log, "w", encoding="utf-8") as handle:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "dvc", *args],
            cwd=repo,
            env=env or run_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_when(
    process: subprocess.Popen, condition: Callable[[], bool], log: Path, timeout: float = 300
) -> None:
    """SIGKILL `process`'s whole process group as soon as `condition()` holds; fail if the
    process ends first (the kill point was missed) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            if process.poll() is not None:
                pytest.fail(
                    f"dvc exited ({process.returncode}) before the kill point\n"
                    f"{log.read_text(encoding='utf-8')[-4000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no kill point within {timeout}s\n{log.read_text()[-4000:]}")
            time.sleep(0.002)
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL `process` and every process it started (dvc, the stage's python, workers)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def tmp_siblings(repo: Path, out: str) -> list[Path]:
    """The half-written copies of `out` that atomic_path leaves if killed: its private
    folders once marked (a kill in the instant between making one and marking it leaves
    an empty folder, which is not removed: core/atomic.py)."""
    final = repo / out
    folders = final.parent.glob(TMP_SIBLING.format(name=final.name))
    return sorted(folder for folder in folders if (folder / MARKER).is_file())


# --------------------------------------------------------------------------- S3 on loopback

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class S3Server:
    """moto's standalone S3 server on 127.0.0.1, on a port the OS picks, in a thread."""

    def start(self) -> None:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        # Port 0: the OS picks a free port, so parallel runs never collide.
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._moto.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def no_aws_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own AWS settings out of the tests' dvc processes: no AWS_*
    variables, empty config and credentials files, no instance-metadata lookups."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for variable, name in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "creds")):
        empty = tmp_path / f"aws-{name}"
        empty.touch()
        monkeypatch.setenv(variable, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
