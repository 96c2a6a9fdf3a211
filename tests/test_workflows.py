"""The GitHub Actions workflows: actionlint (with shellcheck on every `run:` script) finds
nothing in them, each secret they use is named in docs/ci.md and never written out, the
steps that matter come in the right order, and `make browser-deps` installs through sudo
on a runner that is not root."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = PROJECT_ROOT / ".github/workflows"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: pip install -e '.[dev]'")
    return path


def actionlint(*args: str) -> subprocess.CompletedProcess[str]:
    # shellcheck given by path: without it actionlint would skip the `run:` scripts quietly.
    command = [tool("actionlint"), "-no-color", f"-shellcheck={tool('shellcheck')}", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)


def load_workflow(name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1).
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)
    return workflow


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    [job] = workflow["jobs"].values()
    return job["steps"]


def step_index(workflow: dict[str, Any], pattern: str) -> int:
    """The index of the one step whose `run` script matches `pattern`."""
    runs = [step.get("run", "") for step in steps(workflow)]
    found = [i for i, script in enumerate(runs) if re.search(pattern, script, re.M)]
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_actionlint_finds_nothing() -> None:
    assert sorted(path.name for path in WORKFLOWS.glob("*.yml")) == [
        "gpu-repro.yml",
        "pr-report.yml",
        "test.yml",
    ]
    result = actionlint()
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_secrets_are_named_in_the_docs_and_never_written_out() -> None:
    docs = (PROJECT_ROOT / "docs/ci.md").read_text()
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        used |= set(re.findall(r"secrets\.([A-Z0-9_]+)", text))
        # A credential-like variable only ever takes its value from an expression.
        credentials = re.findall(r"^\s*(\w*(?:KEY|TOKEN|SECRET)\w*): (.+)$", text, re.M)
        for name, value in credentials:
            assert value.startswith("${{ ") and value.endswith(" }}"), (path.name, name)
    assert used == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN"}
    for name in used:
        assert f"`{name}`" in docs, name


def test_test_workflow_runs_what_ci_runs_on_push_and_pull_request() -> None:
    workflow = load_workflow("test.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    runs = [step["run"] for step in steps(workflow) if "run" in step]
    ci_script = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line.removeprefix("CI=true ") for line in ci_script if line.startswith(("make", "CI="))]
    assert runs == ci == ["make browser-deps", "make test"]
    [setup] = [step for step in steps(workflow) if "setup-python" in step.get("uses", "")]
    # pip's cache follows the lock files, which say what gets installed.
    assert setup["with"]["cache-dependency-path"] == "requirements/*.txt"


def test_pr_workflow_runs_quick_then_comments_with_the_tested_script() -> None:
    workflow = load_workflow("pr-report.yml")
    assert list(workflow["on"]) == ["pull_request"]
    assert workflow["permissions"]["pull-requests"] == "write"
    quick = step_index(workflow, r"^make quick$")
    plots = step_index(workflow, r"scripts/plots_png\.py")
    comment = step_index(workflow, r"scripts/pr_comment\.py \"\$BASE_REV\"")
    assert quick < plots < comment
    caches = {
        step["with"]["path"]: step for step in steps(workflow) if "cache@" in step.get("uses", "")
    }
    assert set(caches) == {"~/.cache/huggingface", ".dvc/cache", "${{ runner.temp }}/base-quick"}


def test_pr_workflow_compares_with_the_base_commits_quick_run_cached_by_its_hash() -> None:
    workflow = load_workflow("pr-report.yml")
    [job] = workflow["jobs"].values()
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    [cache] = [step for step in steps(workflow) if step.get("id") == "base-quick"]
    assert cache["with"]["key"] == "quick-base-${{ github.event.pull_request.base.sha }}"
    base_run = step_index(workflow, r'^scripts/base_quick\.sh run "\$BASE_SHA" ')
    # Run only on a cache miss; then loaded either way, and BASE_REV is its commit.
    assert steps(workflow)[base_run]["if"] == "steps.base-quick.outputs.cache-hit != 'true'"
    load = step_index(workflow, r"scripts/base_quick\.sh load ")
    assert 'echo "BASE_REV=$rev" >> "$GITHUB_ENV"' in steps(workflow)[load]["run"]
    comment = step_index(workflow, r"scripts/pr_comment\.py \"\$BASE_REV\"")
    assert steps(workflow).index(cache) < base_run < load < comment


def test_gpu_workflow_pushes_to_the_remote_before_it_commits() -> None:
    workflow = load_workflow("gpu-repro.yml")
    assert list(workflow["on"]) == ["workflow_dispatch"]
    [job] = workflow["jobs"].values()
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    pull = step_index(workflow, r"^dvc pull --run-cache --allow-missing$")
    repro = step_index(workflow, r"^\s*dvc repro$")
    push = step_index(workflow, r"^dvc push$")
    commit = step_index(workflow, r"^\s*commit -q -m")
    assert pull < repro < push < commit
    assert "gh pr create" in steps(workflow)[commit]["run"]


# --- hardening: pinned actions, secrets in the steps that need them, caches per branch -----

PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})  # (v\d+\.\d+\.\d+)$")


def test_every_action_is_pinned_by_commit_with_its_tag_named() -> None:
    """A tag can be moved to other code; a commit cannot. The same action at the same commit
    in every workflow."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" not in line:
                continue
            match = PINNED.match(line)
            assert match, (
                f"{path.name}: {line.strip()} is not pinned as uses: OWNER/NAME@SHA  # vX.Y.Z"
            )
            pins.setdefault(match[1], set()).add((match[2], match[3]))
    assert set(pins) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/cache",
        "actions/upload-artifact",
    }
    assert all(len(versions) == 1 for versions in pins.values()), pins


# Which steps of which workflow may see which secret (a pattern of the step's `run`).
SECRET_STEPS = {
    ("gpu-repro.yml", "AWS_ACCESS_KEY_ID"): r"^dvc (pull|push)\b",
    ("gpu-repro.yml", "AWS_SECRET_ACCESS_KEY"): r"^dvc (pull|push)\b",
    ("gpu-repro.yml", "HF_TOKEN"): r"^\s*dvc repro\b",
}


def test_secrets_reach_only_the_steps_that_need_them() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        workflow = load_workflow(path.name)
        [job] = workflow["jobs"].values()
        for scope in (workflow, job):
            assert "secrets." not in str(scope.get("env", {})), (
                f"{path.name}: a secret for every step"
            )
        for step in steps(workflow):
            for name, value in (step.get("env") or {}).items():
                if "secrets." not in str(value) or str(value).endswith("!= '' }}"):
                    continue  # no secret, or only whether one is set
                allowed = SECRET_STEPS.get((path.name, name))
                assert allowed and re.search(allowed, step["run"], re.M), (path.name, name, step)


def test_the_gpu_runners_caches_are_kept_per_branch() -> None:
    """The runner's disk outlives runs: a run of one branch must not fill the pip, Hub or
    DVC cache another branch's run reads."""
    workflow = load_workflow("gpu-repro.yml")
    [job] = workflow["jobs"].values()
    assert not {"PIP_CACHE_DIR", "HF_HOME", "DVC_CACHE_DIR"} & set(job.get("env", {}))
    first = steps(workflow)[0]["run"]
    assert "sha256sum" in first and '"$GITHUB_REF"' in first
    for name in ("PIP_CACHE_DIR", "HF_HOME", "DVC_CACHE_DIR"):
        assert f'echo "{name}=$cache/' in first, name


def test_no_checkout_leaves_a_token_for_the_code_it_runs() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        [checkout] = [
            s for s in steps(load_workflow(path.name)) if "checkout@" in s.get("uses", "")
        ]
        assert checkout["with"]["persist-credentials"] is False, path.name


# --- make browser-deps on a runner that is not root ------------------------------------

SHIMS = {
    # Each stand-in logs how it was called; apt-get fails when APT_FAILS is set.
    "apt-get": '#!/bin/sh\necho "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$LOG"\n'
    '[ -z "$APT_FAILS" ]\n',
    "sudo": '#!/bin/sh\necho "sudo $*" >> "$LOG"\n[ "$1" = -n ] && shift\nexec "$@"\n',
    "id": '#!/bin/sh\necho "$FAKE_UID"\n',
    "npm": "#!/bin/sh\nexit 0\n",
}


def browser_deps(tmp_path: Path, uid: int, sudo: bool, **env: str) -> tuple[int, str, str]:
    """Run `make browser-deps` where chromium and chromedriver are missing: PATH holds only
    stand-ins for id, apt-get, npm and (if `sudo`) sudo."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in SHIMS.items():
        if name != "sudo" or sudo:
            (bin_dir / name).write_text(script)
            (bin_dir / name).chmod(0o755)
    (bin_dir / "env").symlink_to(shutil.which("env"))
    log = tmp_path / "calls.log"
    log.touch()
    result = subprocess.run(
        [tool("make"), "-s", "-f", str(PROJECT_ROOT / "Makefile"), "browser-deps"],
        cwd=tmp_path,
        env={"PATH": str(bin_dir), "LOG": str(log), "FAKE_UID": str(uid), **env},
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout, log.read_text()


INSTALL = "install -y -qq chromium chromium-driver DEBIAN_FRONTEND=noninteractive"


@pytest.mark.e2e
def test_browser_deps_uses_sudo_when_not_root(tmp_path: Path) -> None:
    status, _, calls = browser_deps(tmp_path, uid=1001, sudo=True, CI="true")
    assert status == 0
    assert calls.splitlines() == [
        "sudo -n apt-get update -qq",
        "apt-get update -qq DEBIAN_FRONTEND=",
        f"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get {INSTALL.split(' DEBIAN')[0]}",
        f"apt-get {INSTALL}",
    ]


@pytest.mark.e2e
def test_browser_deps_as_root_runs_apt_get_itself(tmp_path: Path) -> None:
    status, _, calls = browser_deps(tmp_path, uid=0, sudo=False, CI="true")
    assert status == 0
    assert calls.splitlines() == ["apt-get update -qq DEBIAN_FRONTEND=", f"apt-get {INSTALL}"]


@pytest.mark.e2e
@pytest.mark.parametrize("ci", ["true", ""])
def test_browser_deps_failure_fails_only_in_ci(tmp_path: Path, ci: str) -> None:
    status, out, _ = browser_deps(tmp_path, uid=1001, sudo=False, CI=ci, APT_FAILS="1")
    assert "browser-deps: could not install chromium chromium-driver" in out
    assert (status != 0) == (ci == "true")


@pytest.mark.parametrize(
    ("name", "package"),
    [("pr-report.yml", "vl-convert-python"), ("gpu-repro.yml", "dvc-s3")],
    ids=["pr-plots-as-png", "gpu-s3-remote"],
)
def test_each_workflow_installs_what_its_steps_need(name: str, package: str) -> None:
    """The PR report draws its plots with vl-convert (the ci extra) and the GPU run pushes
    to the team's S3 remote (the s3 extra): both only in the locked dev set, which
    `make install-dev` installs and `make install` does not."""
    requirements = PROJECT_ROOT / "requirements"
    assert f"\n{package}==" in (requirements / "dev.txt").read_text()
    assert f"\n{package}==" not in (requirements / "runtime.txt").read_text()
    workflow = load_workflow(name)
    install = steps(workflow)[step_index(workflow, r"^make install")]["run"]
    assert re.search(r"^make install-dev$", install, re.M), install
