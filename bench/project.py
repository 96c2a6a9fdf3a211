"""What the benchmarks share: where the real data and the pretrained stand-in lie (the
environment variables IMDB_DATA and IMDB_BENCH_MODEL, or each script's --data / --model),
and a throwaway project folder whose params.yaml points at them. Run each benchmark from
the repository root as a module: `python -m bench.NAME`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dvc.utils.hydra import apply_overrides

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# train/test/unsup Parquet files with the columns text and label.
IMDB_DIR = Path(os.environ.get("IMDB_DATA", SHARED / "data" / "imdb"))
# Real pretrained BERT weights with DistilBERT's uncased vocabulary: a small stand-in for
# distilbert-base-uncased that runs on a CPU (a save_pretrained folder).
STAND_IN_MODEL = Path(os.environ.get("IMDB_BENCH_MODEL", SHARED / "models" / "all-MiniLM-L6-v2"))
# No bench may reach the Hub: everything it reads is in ../shared.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# Settings for every review, whatever quick-run caps params.yaml holds.
NO_CAPS = {f"prepare.max_{split}_samples": None for split in ("train", "validation", "test")}


def require(*paths: Path) -> None:
    """Exit with one line if a path the benchmark reads is missing."""
    for path in paths:
        if not path.exists():
            sys.exit(f"error: {path} not found: set IMDB_DATA / IMDB_BENCH_MODEL or pass --data")


@contextmanager
def temp_project(
    prefix: str, settings: Mapping[str, object], *, chdir: bool = True
) -> Iterator[Path]:
    """A temporary project folder holding the repo's params.yaml with `settings` (dotted
    keys) applied; the current directory while in the block if `chdir`; removed after."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    cwd = Path.cwd()
    try:
        shutil.copy2(REPO / "params.yaml", workdir / "params.yaml")
        # As `dvc exp run -S key=value` sets them (JSON is valid override syntax).
        overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
        apply_overrides(workdir / "params.yaml", overrides)
        if chdir:
            os.chdir(workdir)
        yield workdir
    finally:
        os.chdir(cwd)
        shutil.rmtree(workdir, ignore_errors=True)
