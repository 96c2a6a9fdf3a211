"""`make report` (scripts/report.py) against Git revisions and DVC experiments, the comment
the pull-request workflow posts (scripts/pr_comment.py) and its base run
(scripts/base_quick.sh), `make runs` (scripts/runs.sh) and the plots as PNG
(scripts/plots_png.py).

They run on a tiny DVC project of their own in a temporary Git repository: one stage that
writes test metrics and test predictions from params, a commit before any run, a committed
baseline and three experiments.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("report.py", "runs.sh", "pr_comment.py", "plots_png.py", "base_quick.sh")
# The stage: test metrics shaped like evaluate's (a file per model, with a key that does not
# change) and test predictions written as evaluate writes them (`reviews` of them, the first
# `accuracy` share right), validation metrics shaped like train_rf's, and one plot.
SCORE_STAGE = """\
import json
from pathlib import Path

import numpy as np
import yaml

from imdb_sentiment.evaluation.predictions import write_predictions

params = yaml.safe_load(Path("params.yaml").read_text())["score"]
scale, reviews = params["scale"], params["reviews"]
labels = np.arange(reviews) % 2
Path("metrics/test").mkdir(parents=True, exist_ok=True)
Path("predictions/test").mkdir(parents=True, exist_ok=True)
for model, base in (("rf", 0.5), ("linear", 0.6)):
    scores = {"accuracy": base * scale, "f1": base * scale / 2, "size_mb": 1.0}
    Path(f"metrics/test/{model}.json").write_text(json.dumps(scores))
    right = np.arange(reviews) < round(base * scale * reviews)
    proba = np.where(right == (labels == 1), 0.9, 0.1)
    folder = Path("predictions/test")
    write_predictions(
        folder / f"{model}.parquet", folder / f"{model}.json", np.arange(reviews), labels, proba
    )
Path("metrics/validation").mkdir(exist_ok=True)
Path("metrics/validation/rf.json").write_text(json.dumps({"accuracy": 0.7 * scale}))
Path("plots").mkdir(exist_ok=True)
rows = "".join(f"{step},{step * scale}\\n" for step in range(5))
Path("plots/curve.csv").write_text("step,value\\n" + rows)
"""
DVC_YAML = """\
stages:
  score:
    cmd: python score.py
    deps: [score.py]
    params: [score]
    outs:
      - metrics/test:
          cache: false
      - predictions/test/rf.parquet
      - predictions/test/rf.json:
          cache: false
      - predictions/test/linear.parquet
      - predictions/test/linear.json:
          cache: false
      - metrics/validation/rf.json:
          cache: false
      - plots/curve.csv:
          cache: false
metrics:
  - metrics/test
  - metrics/validation
plots:
  - plots/curve.csv:
      x: step
      y: value
"""
# The workspace ends as experiment `big`; `main` is the committed baseline; `fewer` scores
# another test set, of 100 reviews.
SCALES = {"main": 1.0, "small": 0.5, "fewer": 1.0, "big": 1.5}
REVIEWS = 200
# `make quick` of the workflow's base run, here an experiment of its own.
MAKEFILE = "quick:\n\tdvc exp run -q --name quick\n"


def env() -> dict[str, str]:
    """This Python's bin folder first, so `dvc` and the stage's `python` are the venv's."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
    )


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("report") / "project"
    (repo / "scripts").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(PROJECT_ROOT / "scripts" / name, repo / "scripts" / name)
    (repo / "score.py").write_text(SCORE_STAGE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text(f"score:\n  scale: 1.0\n  reviews: {REVIEWS}\n")
    (repo / "Makefile").write_text(MAKEFILE)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.name", "Test"], repo)
    run(["git", "config", "user.email", "test@example.com"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "the project, never run"], repo)
    run(["git", "tag", "never-run"], repo)
    run(["dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    for name in ("small", "fewer", "big"):
        # Each experiment starts from the workspace the last one left: set both params.
        reviews = 100 if name == "fewer" else REVIEWS
        settings = ["-S", f"score.scale={SCALES[name]}", "-S", f"score.reviews={reviews}"]
        run(["dvc", "exp", "run", "-q", "-n", name, *settings], repo)
    return repo


@pytest.fixture(scope="module")
def report_of(project: Path) -> Callable[[str], str]:
    """What `scripts/report.py REV` prints, run once per REV."""

    @functools.cache
    def report(rev: str) -> str:
        return run([sys.executable, "scripts/report.py", rev], project).stdout

    return report


def table_rows(markdown: str, heading: str) -> dict[tuple[str, str], list[str]]:
    """{(path, name): the other cells} of the Markdown table under `heading`, in order."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) > 2 and not set(cells[0]) <= {"-"}:
            rows[cells[0], cells[1]] = cells[2:]
    return rows


ACCURACY_HEADER = ["model", "base", "new", "change (pt)", "95% CI (pt)", "McNemar p", "verdict"]


def accuracy_rows(markdown: str) -> dict[str, list[str]]:
    """{model: the other cells} of the test-accuracy table, its header checked."""
    section = markdown.split("## Test accuracy: ", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ACCURACY_HEADER
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: row[1:] for row in rows}


def test_report_compares_each_model_review_by_review(report_of: Callable[[str], str]) -> None:
    report = report_of("small")
    assert "## Test accuracy: workspace against experiment small\n" in report
    assert f"Both scored the same {REVIEWS} test reviews." in report
    rows = accuracy_rows(report)
    assert list(rows) == ["rf", "linear"]
    # rf: 50 of 200 right in `small`, the same 50 and 100 more in `big` (the workspace).
    assert rows["rf"] == [
        "0.250 [0.195, 0.314]",
        "0.750 [0.686, 0.805]",
        "+50.0",
        rows["rf"][3],
        "<0.001",
        "better",
    ]
    low, high = (float(v) for v in rows["rf"][3].strip("[]").split(", "))
    assert 40 < low < 50 < high < 60
    assert rows["linear"][2] == "+60.0" and rows["linear"][5] == "better"
    # Against the workspace's own run nothing changed.
    same = accuracy_rows(report_of("big"))
    assert [row[2:] for row in same.values()] == [
        ["0.0", "[0.0, 0.0]", "1.000", "within noise"]
    ] * 2


def test_report_on_another_test_set_gives_no_verdict(report_of: Callable[[str], str]) -> None:
    report = report_of("fewer")
    rows = accuracy_rows(report)
    assert all(row[2:] == ["-", "-", "-", "-"] for row in rows.values())
    assert report.count("test sets differ (100 vs 200 reviews): not comparable") == 1


def test_report_against_a_revision_without_metrics_is_one_line(
    report_of: Callable[[str], str],
) -> None:
    report = report_of("never-run")
    assert "## Test accuracy" not in report
    metrics = report.split("## Metrics: workspace against never-run\n\n", 1)[1]
    assert metrics.split("\n## ", 1)[0] == (
        "never-run has no metrics: nothing to compare with (its pipeline never ran, or its "
        "dvc.lock and metrics/ were not committed).\n"
    )
    assert "## Params: workspace against never-run" in report


def test_report_says_what_to_run_when_the_base_predictions_are_gone(
    project: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project, copy, symlinks=True)
    shutil.rmtree(copy / ".dvc/cache")  # no cache, and no remote to fetch from
    report = run([sys.executable, "scripts/report.py", "small"], copy).stdout
    assert accuracy_rows(report)["rf"][2:] == ["+50.0", "-", "-", "-"]
    assert (
        "experiment small: predictions/test/rf.parquet is in neither the DVC cache nor the "
        "remote: `dvc push` it where that run was made"
    ) in report


def test_base_quick_run_is_made_once_and_reused_from_its_folder(
    project: Path, tmp_path: Path
) -> None:
    """The pull-request workflow's base run: made in a clone at the base commit, kept in a
    folder (which the workflow caches by the base commit's hash), then brought into another
    clone, as a later pull request against the same base gets it from the cache."""
    base = run(["git", "rev-parse", "main"], project).stdout.strip()
    folder = tmp_path / "base-quick"
    made = run(["bash", "scripts/base_quick.sh", "run", base, str(folder)], project)
    commit = made.stdout.strip().splitlines()[-1]
    assert (folder / "rev").read_text().strip() == commit
    assert run(["bash", "scripts/base_quick.sh", "run", base, str(folder)], project, False).stderr

    other = tmp_path / "other"
    run(["git", "clone", "-q", str(project), str(other)], tmp_path)
    run(["dvc", "exp", "run", "-q", "-S", "score.scale=1.5"], other)  # the pull request
    loaded = run(["bash", "scripts/base_quick.sh", "load", str(folder)], other).stdout.strip()
    assert loaded == commit
    report = run([sys.executable, "scripts/report.py", commit], other).stdout
    rows = accuracy_rows(report)
    # main's quick run (scale 1.0): rf 100 of 200 right; the pull request's: 150.
    assert rows["rf"][:3] == ["0.500 [0.431, 0.569]", "0.750 [0.686, 0.805]", "+25.0"]
    assert rows["rf"][5] == "better"


def test_report_rows_are_sorted_by_file(report_of: Callable[[str], str]) -> None:
    # DVC lists the metrics files in no fixed order; the report sorts them.
    metrics = table_rows(report_of("small"), "## Metrics: workspace against experiment small")
    paths = [path for path, _ in metrics if path != "Path"]
    assert paths == sorted(paths) and paths[-1] == "metrics/validation/rf.json"


def test_report_against_an_experiment(report_of: Callable[[str], str]) -> None:
    report = report_of("small")
    metrics = table_rows(report, "## Metrics: workspace against experiment small")
    # Path, then the experiment's value, the workspace's (experiment `big`), the change.
    assert metrics["Path", "Metric"] == ["small", "workspace", "Change"]
    assert metrics["metrics/test/rf.json", "accuracy"] == ["0.25", "0.75", "0.5"]
    assert metrics["metrics/test/linear.json", "f1"] == ["0.15", "0.45", "0.3"]
    assert ("metrics/test/rf.json", "size_mb") not in metrics  # unchanged keys are left out
    params = table_rows(report, "## Params: workspace against experiment small")
    assert params["params.yaml", "score.scale"] == ["0.5", "1.5"]


def test_report_against_a_git_revision_and_an_unknown_name(
    project: Path, report_of: Callable[[str], str]
) -> None:
    metrics = table_rows(report_of("main"), "## Metrics: workspace against main")
    assert metrics["metrics/test/rf.json", "accuracy"] == ["0.5", "0.75", "0.25"]

    missing = run([sys.executable, "scripts/report.py", "no-such-run"], project, check=False)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr == "error: no-such-run: no such Git revision or DVC experiment\n"


@pytest.mark.parametrize("rev", ["main", "small"])
def test_pr_comment_body_holds_the_report_of_the_runs(
    project: Path, tmp_path: Path, rev: str
) -> None:
    """The body the workflow posts, read here as a reviewer reads it (not compared with
    report.py's output, which pr_comment.py prints): each section's heading, the test-set
    size, each model's row with its verdict, the metrics and params that changed. The
    figures follow from the score stage: rf right on 0.5 x scale of the 200 reviews, linear
    on 0.6 x scale, the workspace (experiment big) at scale 1.5, `rev` at SCALES[rev]."""
    # The workflow's step, with posting replaced by writing the body to a file.
    body_file = tmp_path / "comment.md"
    run([sys.executable, "scripts/pr_comment.py", rev, "--output", str(body_file)], project)
    body = body_file.read_text()
    against = "main" if rev == "main" else f"experiment {rev}"
    headings = [line for line in body.splitlines() if line.startswith("## ")]
    assert headings == [
        f"## {section}: workspace against {against}"
        for section in ("Test accuracy", "Metrics", "Params")
    ]
    assert f"Both scored the same {REVIEWS} test reviews." in body
    rows = accuracy_rows(body)
    assert list(rows) == ["rf", "linear"]
    for model, share in (("rf", 0.5), ("linear", 0.6)):
        base, new = share * SCALES[rev], share * SCALES["big"]
        assert [cell.split(" [")[0] for cell in rows[model][:2]] == [f"{base:.3f}", f"{new:.3f}"]
        assert rows[model][2] == f"{(new - base) * 100:+.1f}" and rows[model][5] == "better"
    metrics = table_rows(body, "## Metrics: ")
    accuracy = [
        f"{0.5 * SCALES[rev]:g}",
        f"{0.5 * SCALES['big']:g}",
        f"{0.5 * (1.5 - SCALES[rev]):g}",
    ]
    assert metrics["metrics/test/rf.json", "accuracy"] == accuracy
    params = table_rows(body, "## Params: ")
    assert params["params.yaml", "score.scale"] == [str(SCALES[rev]), "1.5"]


def test_pr_comment_edits_the_last_comment_with_gh(
    project: Path, report_of: Callable[[str], str], tmp_path: Path
) -> None:
    # A stand-in `gh` that records its arguments and the body file it was given.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_gh = bin_dir / "gh"
    fake_gh.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$GH_LOG"\n'
        'while [ "$1" != --body-file ]; do shift; done\ncp "$2" "$GH_LOG.body"\n'
    )
    fake_gh.chmod(0o755)
    log = tmp_path / "gh.log"
    url = "https://github.com/owner/repo/actions/runs/1/artifacts/2"
    result = subprocess.run(
        [sys.executable, "scripts/pr_comment.py", "small", "--pr", "7", "--plots-url", url],
        cwd=project,
        env=dict(env(), PATH=f"{bin_dir}{os.pathsep}{env()['PATH']}", GH_LOG=str(log)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    args = log.read_text().splitlines()
    assert args[:6] == ["pr", "comment", "7", "--edit-last", "--create-if-none", "--body-file"]
    assert not Path(args[6]).exists()  # the temporary body file is removed
    posted = Path(f"{log}.body").read_text()
    assert posted == f"{report_of('small')}\n[Plots: `dvc plots diff` as PNG images]({url})\n"


def test_runs_table_keeps_only_the_test_scores(project: Path) -> None:
    table = run(["bash", "scripts/runs.sh"], project).stdout
    caption, _, header, _, *rows = table.strip().splitlines()
    assert caption == "Test accuracy per model:"
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns == ["Experiment", "Created", "linear", "rf"]
    by_name = {row.split("|")[1].strip(): row for row in rows}
    assert set(by_name) >= {"workspace", "main"}
    for name in ("small", "big"):
        [row] = [row for row in rows if f"[{name}]" in row]
        accuracy = [cell.strip() for cell in row.strip("|").split("|")][3]
        assert float(accuracy) == 0.5 * SCALES[name]


def test_runs_lists_experiments_of_earlier_commits_with_the_base_model(
    project: Path, tmp_path: Path
) -> None:
    # Once the workspace is committed (the README's sharing steps), the experiments' base
    # commit is no longer HEAD, as for those a teammate pulls: they are still listed.
    repo = tmp_path / "project"
    shutil.copytree(project, repo, symlinks=True)
    baseline = run(["git", "rev-parse", "--short", "HEAD"], repo).stdout.strip()
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(f"{params}model:\n  name: ./models/pretrained/MiniLM-L6\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "keep big"], repo)
    table = run(["bash", "scripts/runs.sh"], repo).stdout
    caption, _, header, _, *rows = table.strip().splitlines()
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns == ["Experiment", "Created", "base model", "linear", "rf"], table
    cells = {row.split("|")[1].strip(): row.split("|")[3].strip() for row in rows}
    # The base model by its own name (the folder's), where the commit's params name one.
    assert cells["workspace"] == "MiniLM-L6" and cells["main"] == "MiniLM-L6", table
    assert baseline in cells, table
    for name in ("small", "big"):
        assert [row for row in rows if f"[{name}]" in row], table


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])  # IHDR, right after the signature
    return width, height


def test_plots_diff_renders_to_png(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "plots"
    run([sys.executable, "scripts/plots_png.py", str(out_dir), "small"], project)
    [png] = sorted(out_dir.iterdir())
    assert png.name == "plots_curve.csv.png"
    width, height = png_size(png)
    assert width > 300 and height > 300

    # The spec it rendered overlays the experiment and the workspace, with their values.
    monkeypatch.chdir(project)
    monkeypatch.setenv("PATH", env()["PATH"])
    [spec] = load_script("plots_png").plot_specs(["small"]).values()
    values = {(row["rev"], float(row["value"])) for row in spec["data"]["values"]}
    assert ("small", 4 * SCALES["small"]) in values
    assert ("workspace", 4 * SCALES["big"]) in values


def test_plots_png_names_the_extra_when_vl_convert_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plots_png = load_script("plots_png")
    monkeypatch.setitem(sys.modules, "vl_convert", None)  # makes `import vl_convert` fail
    with pytest.raises(plots_png.PlotsError, match=r"pip install -e '\.\[ci\]'"):
        plots_png.render_pngs({"curve": {}}, tmp_path)
