"""params.yaml is written the way `dvc exp run -S` writes it back, so a reviewer of an
applied experiment reads a diff of the lines that changed and nothing else."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides
from helpers import PROJECT_ROOT, dvc, git, run

PARAMS = PROJECT_ROOT / "params.yaml"


def rewritten(tmp_path: Path, override: str) -> list[str]:
    """The lines of params.yaml after DVC applies `override` (as `dvc exp run -S` does)."""
    copy = tmp_path / "params.yaml"
    shutil.copy2(PARAMS, copy)
    apply_overrides(copy, [override])
    return copy.read_text(encoding="utf-8").splitlines()


def changed_lines(before: list[str], after: list[str]) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_dvc_writes_params_yaml_back_byte_for_byte(tmp_path: Path) -> None:
    # DVC rewrites every value of the file on any `-S`: setting a key to the value it has
    # leaves nothing to diff (no null turned into an empty value, no list restyled, no
    # comment dropped).
    assert rewritten(tmp_path, "seed=42") == PARAMS.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train_linear.C=2", ["-  C: 1.0", "+  C: 2"]),
        ("prepare.max_train_samples=1600", ["-  max_train_samples:", "+  max_train_samples: 1600"]),
        # Lists: the key after each one keeps its comment (a comment line below a list
        # belongs to the list and goes when DVC writes a new one).
        ("train_linear.char_ngrams=[2,4]", ["+  - 2", "+  - 4"]),
        ("evaluate.length_buckets=[128]", ["-  - 256", "-  - 512", "-  - 1024"]),
        (
            "evaluate.length_buckets=[100,200]",
            ["-  - 128", "-  - 256", "-  - 512", "-  - 1024", "+  - 100", "+  - 200"],
        ),
    ],
)
def test_one_setting_changes_only_its_own_lines(
    tmp_path: Path, override: str, expected: list[str]
) -> None:
    before = PARAMS.read_text(encoding="utf-8").splitlines()
    assert changed_lines(before, rewritten(tmp_path, override)) == expected


@pytest.mark.e2e
def test_an_applied_experiment_changes_one_line_of_params_yaml(tmp_path: Path) -> None:
    """The committed params.yaml, a stage that reads `train_linear`, the real `dvc exp run
    -S` and `dvc exp apply`: `git diff` of params.yaml is the one line that was set."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(PARAMS, repo / "params.yaml")
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  fit:\n"
        "    cmd: python -c \"open('out.txt', 'w').write('fitted')\"\n"
        "    params:\n"
        "      - train_linear\n"
        "    outs:\n"
        "      - out.txt\n",
        encoding="utf-8",
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@example.com")
    git(repo, "config", "user.name", "tests")
    dvc(repo, "init", "-q")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")

    dvc(repo, "exp", "run", "-n", "c2", "-S", "train_linear.C=2")
    git(repo, "checkout", "-q", "--", "params.yaml", "dvc.lock")
    dvc(repo, "exp", "apply", "c2")
    stat = run(["git", "diff", "--numstat", "params.yaml"], cwd=repo).stdout.split()
    assert stat == ["1", "1", "params.yaml"], stat
    diff = run(["git", "diff", "-U0", "params.yaml"], cwd=repo).stdout.splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-  C: 1.0",
        "+  C: 2",
    ]
