"""Make variables as an attacker or a careless user writes them: shell syntax, make's own
`$(shell ...)`, quotes, newlines and options in every variable a target passes to its
script. Nothing runs (a sentinel file never appears), the script refuses the value in one
`error:` line before it calls git, dvc, npm or pip, and a good value still works.

Each case runs make in a copy of the Makefile and scripts/ (no Git repository, no venv:
`-o install` keeps make from installing anything), so a value that got through could not
reach the project's own checkout.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SENTINEL = "PWNED"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(PROJECT_ROOT / "Makefile", root / "Makefile")
    shutil.copytree(PROJECT_ROOT / "scripts", root / "scripts")
    (root / "a,b").mkdir()  # a real folder whose name DVC's -S would split
    return root


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-o", "install", *args],
        cwd=root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def hostile(sentinel: Path) -> list[str]:
    """Values that would create `sentinel` if a shell or make ran any part of them."""
    return [
        f"main; touch {sentinel}",
        f"$(shell touch {sentinel})",
        f"$$(touch {sentinel})",
        f"`touch {sentinel}`",
        f'1"; touch {sentinel}; echo "',
        f"1'; touch {sentinel}; echo '",
        f"main\ntouch {sentinel}",
        f"main && touch {sentinel}",
        f"main | touch {sentinel}",
        f"--output={sentinel}",
    ]


CASES = [
    # (target, variable, other settings, the start of the one error line)
    ("report", "REV", {}, "error: REV="),
    ("release", "NAME", {"VERSION": "1.0.0"}, "error: NAME="),
    ("release", "VERSION", {"NAME": "distilbert"}, "error: VERSION="),
    ("quick", "QUICK_EXTRA", {}, "error: QUICK_EXTRA: "),
    ("quick", "QUICK_SETTINGS", {}, "error: QUICK_SETTINGS: "),
    ("quick", "DATA", {}, "error: DATA="),
    ("quick", "MODEL", {}, "error: MODEL="),
    ("offline-plots", "VEGA_PACKAGES", {}, "error: VEGA_PACKAGES: "),
    ("browser-deps", "VEGA_PACKAGES", {}, "error: VEGA_PACKAGES: "),
    ("gpu-wheels", "GPU_WHEELS", {}, "error: GPU_WHEELS: "),
]


@pytest.mark.parametrize(("target", "variable", "others", "expected"), CASES)
def test_no_value_runs_and_each_is_refused_in_one_line(
    project: Path, target: str, variable: str, others: dict[str, str], expected: str
) -> None:
    sentinel = project.parent / SENTINEL
    settings = [f"{name}={value}" for name, value in others.items()]
    for value in hostile(sentinel):
        result = make(project, target, *settings, f"{variable}={value}")
        assert not sentinel.exists(), (variable, value, result.stderr)
        assert result.returncode != 0, (variable, value)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(expected), (value, result.stderr)
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["Makefile", "a,b", "scripts"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("QUICK_EXTRA", "--run-all", "error: QUICK_EXTRA: --run-all is not -S key=value"),
        ("QUICK_EXTRA", "-S", "error: QUICK_EXTRA: -S is not -S key=value"),
        ("QUICK_EXTRA", "-S a=1 --queue", "error: QUICK_EXTRA: --queue is not -S key=value"),
        ("DATA", "a,b", "error: DATA=a\\,b: rename the folder to letters, digits"),
        ("MODEL", "nowhere", "error: MODEL=nowhere: no such folder"),
    ],
)
def test_quick_takes_settings_and_plain_folder_names_only(
    project: Path, variable: str, value: str, expected: str
) -> None:
    result = make(project, "quick", f"{variable}={value}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert errors[0].startswith(expected), errors


def test_a_variable_no_target_reads_is_not_expanded_either(project: Path) -> None:
    """make exports every command-line variable to its recipes, expanding it first: the
    Makefile takes all of them literally."""
    sentinel = project.parent / SENTINEL
    result = make(project, "report", "REV=-bad", f"UNUSED=$(shell touch {sentinel})")
    assert not sentinel.exists() and result.returncode != 0
    result = subprocess.run(
        ["make", "-n", "install", f"VENV=$(shell touch {sentinel})"],
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not sentinel.exists() and result.returncode != 0
    assert "VENV=$(shell touch" in result.stderr and "name one folder" in result.stderr


def test_good_values_pass_the_checks(project: Path) -> None:
    """A revision, a version, settings and package lists as documented get past the
    checks (and fail later, here, for want of a repository: not on their values)."""
    result = make(project, "report", "REV=origin/main~2")
    assert "REV=" not in result.stderr, result.stderr
    result = make(project, "release", "NAME=text/distilbert_v2", "VERSION=v1.10.0")
    assert "NAME=" not in result.stderr and "VERSION=" not in result.stderr, result.stderr
    extra = "QUICK_EXTRA=-S train_linear.char_ngrams=[2,4] -S prepare.max_train_samples=50"
    result = make(project, "quick", extra, f"DATA={project}/scripts")
    assert "QUICK_EXTRA" not in result.stderr and "DATA=" not in result.stderr, result.stderr
