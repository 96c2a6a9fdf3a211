"""Fixtures shared by the tests: a tiny DistilBERT, a temporary DVC project, and the one
reference run of the whole tiny pipeline. The plain helpers they use live in helpers.py."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from dvc_helpers import Reference, reference_run
from filelock import FileLock
from helpers import (
    PROJECT_ROOT,
    build_tiny_model,
    make_project_repo,
    make_reviews,
    pipeline_process,
    write_aclimdb,
)

from imdb_sentiment.inference.auto_backend import CACHE_DIR_ENV
from imdb_sentiment.inference.precision import CPU_BF16_ENV

# The cache folder this process made for `--backend auto` (each xdist worker and the
# controller make, and remove, their own).
CACHE_DIR = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the workers share the CPUs: torch in each of them, and in the
    stages they start, uses one thread, or oversubscribed threads slow every test down."""
    # The same numbers on every CPU: fp32 even where the CPU does bf16 (tests of that
    # choice set the answer themselves).
    os.environ[CPU_BF16_ENV] = "0"
    # `--backend auto` keeps what it measured in a cache folder: the tests' own, not the
    # user's, removed when this process ends (pytest_unconfigure).
    config.stash[CACHE_DIR] = os.environ[CACHE_DIR_ENV] = tempfile.mkdtemp(
        prefix="imdb-sentiment-cache-"
    )
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the cache folder this process made, and only that one: a worker's folder is
    its own, and the controller's (which the workers' environment started with) is
    removed by the controller once every worker has finished."""
    folder = config.stash.get(CACHE_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def pipeline_processes_only_in_e2e_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that starts `dvc`, `make`, a stage or command of the package, or torchrun
    must be marked `e2e`: the quick tier (`make test-fast`) runs none of them."""
    if request.node.get_closest_marker("e2e"):
        return
    start = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        started = pipeline_process(args)
        if started:
            pytest.fail(f"starts `{started}` but is not marked e2e", pytrace=False)
        start(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def tiny_model(out_dir: Path) -> Path:
    """The tiny DistilBERT every test trains from (seeded: the same bytes each time)."""
    return build_tiny_model(out_dir, make_reviews(200, seed=123)["text"].tolist())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The tiny model's tokenizer (every model trained from it keeps it): pads with id 0."""
    from imdb_sentiment.transformer.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir), param=None)


@pytest.fixture
def project_repo(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A fresh Git + DVC repository with the project, synthetic aclImdb data, the tiny model."""
    source = write_aclimdb(tmp_path / "source")
    return make_project_repo(tmp_path / "repo", source, tiny_model_dir)


@pytest.fixture
def in_tmp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run a stage's main() in-process inside `tmp_path`, with the project's params.yaml."""
    shutil.copy2(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The whole tiny pipeline, run once per test run from nothing and committed: the run
    every other run is compared with, and what tests clone instead of running it again.

    Under pytest-xdist the first worker that needs it builds it in the folder all workers
    share (the parent of each worker's temp folder) while the others wait for the lock;
    they all read the same run (tests only clone it, see `Reference`)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        base = tmp_path_factory.mktemp("reference")
        return reference_run(base, tiny_model(base / "tiny-distilbert"))
    base = tmp_path_factory.getbasetemp().parent / "reference"
    record = base / "reference.pickle"
    with FileLock(f"{base}.lock"):
        if not record.exists():
            shutil.rmtree(base, ignore_errors=True)  # what a failed attempt left
            base.mkdir()
            built = reference_run(base, tiny_model(base / "tiny-distilbert"))
            record.with_suffix(".tmp").write_bytes(pickle.dumps(built))
            record.with_suffix(".tmp").rename(record)
    return pickle.loads(record.read_bytes())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which pytest-xdist hands out whole files as workers free up: files with
    end-to-end tests first (each file keeps its order), so the long ones start early and
    the short ones fill in at the end, rather than one worker finishing a long file alone.
    Among them one that uses the reference run first, so that one worker builds it while
    the others run files that do not need it, and those that do come after."""
    users = {item.path for item in items if "reference" in getattr(item, "fixturenames", ())}
    heavy = {item.path for item in items if item.get_closest_marker("e2e")}
    builder = min(users, default=None)

    def rank(item: pytest.Item) -> int:
        if item.path == builder:
            return 0
        if item.path in heavy:
            return 2 if item.path in users else 1
        return 3

    items.sort(key=rank)
