"""Fixtures shared by the tests: a tiny DistilBERT, a temporary DVC project, and the one
reference run of the whole tiny pipeline. The plain helpers they use live in helpers.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from dvc_helpers import Reference, reference_run
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with end-to-end tests first (each file keeps its order): pytest-xdist hands
    out whole files as workers free up, so the long ones start early and the short ones
    fill in at the end, rather than one worker finishing a long file alone."""
    heavy = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in heavy)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = make_reviews(200, seed=123)["text"].tolist()
    return build_tiny_model(tmp_path_factory.mktemp("tiny-distilbert"), texts)


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
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Reference:
    """The whole tiny pipeline, run once per session from nothing and committed: the run
    every other run is compared with, and what tests clone instead of running it again."""
    return reference_run(tmp_path_factory, tiny_model_dir)
