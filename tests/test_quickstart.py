"""The README's quickstart and sharing steps, followed literally on synthetic data: `make
quick` with local data and a local model, then commit, push, and a teammate's clone that
`dvc pull` makes complete and up to date."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    PROJECT_ROOT,
    TINY_PARAMS,
    assert_test_metrics_match_predictions,
    dvc,
    git,
    make_project_repo,
    metrics_from_predictions,
    run,
    write_aclimdb,
)

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# The tiny model needs its own training settings; they override the quick ones.
TINY_QUICK = " ".join(
    f"-S {key}={value}"
    for key, value in {
        **{k: v for k, v in TINY_PARAMS.items() if k.startswith(("train_distilbert", "tokenize"))},
        "train_distilbert.eval_strategy": "epoch",
        "train_distilbert.save_strategy": "epoch",
        "train_distilbert.per_device_eval_batch_size": 16,
    }.items()
)
# The README's sharing steps, in order: the team remote (once), what the first clone runs,
# what a teammate's clone runs.
TEAM_REMOTE_STEPS = ("dvc remote add -d team", "git add .dvc/config")
SHARING_STEPS = ("git add -A", 'git commit -m "quick run"', "make push", "git push")
EXPERIMENT_STEPS = ("dvc exp push origin --all-commits", "dvc exp pull origin --all-commits")
TEAMMATE_STEPS = ("make pull", "dvc status", "make runs")


@pytest.mark.e2e
def test_make_quick_then_share_to_a_clean_clone(tmp_path: Path, tiny_model_dir: Path) -> None:
    steps = (*TEAM_REMOTE_STEPS, *SHARING_STEPS, *EXPERIMENT_STEPS, *TEAMMATE_STEPS)
    for step in ("make quick DATA=", *steps):
        assert step in README, f"the README no longer says `{step}`"

    source = write_aclimdb(tmp_path / "downloads", n_train=64, n_test=32)
    # The first clone and the teammate's sit in different parent folders: the default
    # remote, a folder beside the repository, is not one the teammate's clone reaches.
    repo = make_project_repo(
        tmp_path / "alice" / "imdb-sentiment", tmp_path / "unused", tiny_model_dir
    )
    for name in ("Makefile", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, repo / name)
    shutil.copytree(PROJECT_ROOT / "scripts", repo / "scripts")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project with its Makefile")

    venv = Path(sys.executable).parent.parent
    quick = run(
        [
            "make",
            "-o",
            "install",
            "quick",
            f"VENV={venv}",
            f"DATA={source}",
            f"MODEL={tiny_model_dir}",
            f"QUICK_EXTRA={TINY_QUICK}",
        ],
        cwd=repo,
        timeout=1800,
    )
    # No noise from DVC about the outs a first run has not made yet.
    assert "No file hash info found" not in quick.stderr
    # It prints each model's test accuracy.
    # The table runs from its header to the first blank line.
    table = quick.stdout[quick.stdout.index("quick: finished") :].split("\n\n")[0]
    lines = table.splitlines()[2:]
    rows = {line.split()[0]: [c for c in line.split()[1:] if c[0] != "("] for line in lines}
    assert set(rows) == {"rf", "linear", "distilbert", "distilbert_int8"}, table
    # The fine-tuned models are named with their base model.
    base = f"({tiny_model_dir.name})"
    assert [line.split()[1] == base for line in lines] == [False, False, True, True], table
    # Each model's figures are those of the run's own predictions, recomputed here, and
    # so are its metrics files: accuracy with its 95% Wilson interval (`0.863 [0.841,
    # 0.883]`), F1, ROC AUC and log loss.
    assert_test_metrics_match_predictions(repo)
    for model, metrics in metrics_from_predictions(repo).items():
        accuracy, low, high, *others = rows[model]
        assert accuracy == f"{metrics['accuracy']:.3f}", (model, table)
        assert others == [f"{metrics[key]:.4f}" for key in ("f1", "roc_auc", "log_loss")], table
        reviews = len(pd.read_parquet(repo / f"predictions/test/{model}.parquet"))
        expected = wilson(round(metrics["accuracy"] * reviews), reviews)
        shown = (float(low.strip("[,")), float(high.strip("]")))
        assert shown == pytest.approx(expected, abs=0.0005 + 1e-9), (model, table)
    # Local data and model came in the DVC way: relative paths, tracked by `dvc add`.
    params = (repo / "params.yaml").read_text()
    assert "source: ./data/raw/aclImdb" in params and "name: ./models/pretrained/" in params
    assert (repo / "data/raw/aclImdb.dvc").exists()
    assert str(tmp_path) not in params
    # A named experiment, with training curves that have points.
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    names = [rev["name"] for c in shown for e in c.get("experiments") or [] for rev in e["revs"]]
    assert "quick" in names
    loss = repo / "dvclive/train_distilbert/plots/metrics/train/loss.tsv"
    assert len(loss.read_text().splitlines()) > 5

    # Sharing, as the README says. The team remote: a folder both clones reach stands in
    # for the team's bucket.
    team_storage = tmp_path / "team-dvc-storage"
    dvc(repo, "remote", "add", "-d", "team", str(team_storage))
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-q", "-m", "team DVC remote")
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "--initial-branch=main", str(bare)], cwd=tmp_path)
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "quick run")
    make(repo, venv, "push")
    git(repo, "push", "-q", "origin", "main")
    dvc(repo, "exp", "push", "origin", "--all-commits")

    # The teammate, in another parent folder: clone, pull, and nothing is out of date or
    # reruns.
    clone = tmp_path / "bob" / "work" / "imdb-sentiment"
    clone.parent.mkdir(parents=True)
    run(["git", "clone", "-q", str(bare), str(clone)], cwd=tmp_path)
    make(clone, venv, "pull")
    assert json.loads(dvc(clone, "status", "--json").stdout or "{}") == {}
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    rerun = dvc(clone, "repro")
    assert "Running stage" not in rerun.stdout, rerun.stdout
    assert (clone / "models/distilbert/model.safetensors").exists()
    # Review works in the clone: a row per model and split with no holes, and no change
    # against main.
    shown = dvc(clone, "metrics", "show").stdout
    assert all(f"metrics/test/{name}.json" in shown for name in ("rf", "linear", "distilbert"))
    assert max(len(line) for line in shown.splitlines()) <= 120, shown  # fits a terminal
    assert " - " not in shown and "-\n" not in shown, shown  # every file has every key
    assert dvc(clone, "metrics", "diff", "main").stdout.strip() == ""

    # The experiment, shared: pulled, listed by `make runs` with the base model.
    assert "quick" not in make(clone, venv, "runs").stdout
    dvc(clone, "exp", "pull", "origin", "--all-commits")
    runs = make(clone, venv, "runs").stdout
    [row] = [line for line in runs.splitlines() if "[quick]" in line]
    assert f"| {tiny_model_dir.name} " in row, runs


def wilson(correct: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95% Wilson score interval, from its formula."""
    share, spread = correct / total, z * z / total
    centre = (share + spread / 2) / (1 + spread)
    half = z * math.sqrt(share * (1 - share) / total + spread / (4 * total)) / (1 + spread)
    return centre - half, centre + half


def make(repo: Path, venv: Path, target: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in `repo` with this test's virtual environment (no install)."""
    return run(["make", "-o", "install", target, f"VENV={venv}"], cwd=repo, timeout=600)
