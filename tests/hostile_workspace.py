"""The small workspace (three tiny models, a user's file beside them) and the helpers that
the hostile-input tests share: snapshots of every file's bytes, predict run in-process or
as a command, and the checks of a one-line error."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import PROJECT_ROOT, make_reviews, set_params, subprocess_env

from imdb_sentiment.classical.store import save_classical_model
from imdb_sentiment.cli import predict
from imdb_sentiment.transformer.loading import load_tokenizer

REVIEW = "A superb, moving film with a brilliant cast. Loved it."
CRAFT_TIMEOUT = 300  # a tree whose child points back at its parent would loop forever


# --- the workspace and helpers shared by the hostile-input tests ---------------------------


def build_small_workspace(root: Path, tiny_model_dir: Path) -> Path:
    """A project folder holding params.yaml and the three models predict reads, fitted on
    synthetic reviews in seconds, plus a file of the user's (notes.txt) beside them."""
    from imdb_sentiment.classical import forest, linear
    from imdb_sentiment.text.cutting import CutParams
    from imdb_sentiment.text.tokenizing import tokenize_texts

    root.mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    set_params(root / "params.yaml", {"model.name": str(tiny_model_dir)})
    distilbert = root / "models" / "distilbert"
    shutil.copytree(tiny_model_dir, distilbert)
    cut = {"max_length": 64, "truncation": "head_tail", "head_tokens": 16}
    (distilbert / "tokenize_config.json").write_text(json.dumps(cut), encoding="utf-8")
    frame = make_reviews(120, seed=7)
    tokenizer = load_tokenizer(str(tiny_model_dir), param=None)
    frame["tokens"] = tokenize_texts(frame["text"].tolist(), tokenizer, CutParams())["tokens"]
    rf_config = forest.RFParams(min_df=1, select_k=50, n_estimators=8, n_jobs=1, verbose=0)
    linear_config = linear.LinearParams(min_df=1, n_jobs=1)
    for name, pipeline in (
        ("rf", forest.build_pipeline(rf_config, seed=0)),
        ("linear", linear.build_pipeline(linear_config, seed=0)),
    ):
        pipeline.fit(frame[["text", "tokens"]], frame["label"])
        save_classical_model(pipeline, root / "models" / name)
    (root / "notes.txt").write_text("the user's own notes\n", encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every folder and file under `root`, each file with the SHA-256 of its bytes."""
    tree = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink():
            tree[relative] = "folder"
        else:
            tree[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The paths added, removed or rewritten between two snapshots."""
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def error_lines(stderr: str) -> list[str]:
    """The `error:` lines of stderr, after checking that nothing crashed with a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error(stderr: str, expected: str) -> None:
    """stderr holds exactly one `error:` line, and it starts with `expected`."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith(expected), f"{lines[0]!r} does not start with {expected!r}"


def call_predict(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run predict in this process: (exit status, stdout, stderr)."""
    try:
        predict.main(argv)
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    return status, out, err


def run_predict(
    argv: list[Any], cwd: Path, timeout: float = 300, **kwargs: Any
) -> subprocess.CompletedProcess:
    """Run predict as a command (a crash shows as a negative status)."""
    return subprocess.run(
        [sys.executable, "-m", "imdb_sentiment.cli.predict", *argv],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


# --- this module's fixtures ----------------------------------------------------------------
