"""The model registry: `make release` (scripts/release.sh) tags a version of a model that
dvc.yaml declares under `artifacts:`, and `dvc artifacts get` fetches that version from the
Git repository and its DVC remote into a folder with no clone, where predict loads it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT, dvc, git, run, set_params

from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.text.cutting import CutParams

pytestmark = pytest.mark.e2e


def release(repo: Path, name: str, version: str, check: bool = True):
    return run(["bash", "scripts/release.sh", name, version], cwd=repo, check=check)


def last_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def model_repo(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    """A clone of a bare Git `origin` holding the project's `artifacts:` declaration and a
    tiny DistilBERT at models/distilbert (`dvc add`ed, local DVC remote), all committed."""
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], cwd=tmp_path)
    repo = tmp_path / "work"
    run(["git", "clone", "-q", str(origin), str(repo)], cwd=tmp_path)
    git(repo, "config", "user.email", "tests@example.com")
    git(repo, "config", "user.name", "tests")
    git(repo, "checkout", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "storage", str(tmp_path / "dvc-storage"))
    declared = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"artifacts": declared}, sort_keys=False))
    # The artifacts' desc names the base model, which DVC fills in from params.yaml.
    shutil.copy2(PROJECT_ROOT / "params.yaml", repo / "params.yaml")
    model = repo / "models/distilbert"
    shutil.copytree(tiny_model_dir, model)
    cut = CutParams(max_length=64, head_tokens=16).model_dump()
    (model / "tokenize_config.json").write_text(json.dumps(cut))
    dvc(repo, "add", "-q", "models/distilbert")
    (repo / "scripts").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts/release.sh", repo / "scripts/release.sh")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny model")
    return repo, origin


def test_the_registry_names_the_base_model_that_was_fine_tuned(
    model_repo: tuple[Path, Path],
) -> None:
    repo, _ = model_repo
    set_params(repo / "params.yaml", {"model.name": "./models/pretrained/all-MiniLM-L6-v2"})
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        artifacts = dvc_repo.artifacts.read()["dvc.yaml"]
    for name in ("distilbert", "distilbert-onnx"):
        assert artifacts[name].desc.startswith(
            "./models/pretrained/all-MiniLM-L6-v2 fine-tuned on IMDb reviews"
        ), artifacts[name].desc
    assert artifacts["rf"].desc.startswith("RandomForest")


def test_release_tags_a_version_that_artifacts_get_fetches_for_predict(
    model_repo: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, origin = model_repo
    # Not yet on the remote branch: refused, and no tag is made.
    error = last_error(release(repo, "distilbert", "1.0.0", check=False))
    assert error.startswith("error: branch main has no upstream")
    git(repo, "push", "-q", "-u", "origin", "main")
    release(repo, "distilbert", "1.0.0")
    tag = git(repo, "cat-file", "-t", "distilbert@v1.0.0").stdout.strip()
    assert tag == "tag"  # annotated, as GTO and DVC require
    assert "distilbert@v1.0.0" in git(origin, "tag").stdout

    # A second version with a changed model.
    (repo / "models/distilbert/NOTES.txt").write_text("second version\n")
    dvc(repo, "add", "-q", "models/distilbert")
    git(repo, "commit", "-q", "-am", "second version")
    git(repo, "push", "-q")
    release(repo, "distilbert", "1.1.0")

    fetched = tmp_path / "elsewhere"
    fetched.mkdir()
    dvc(fetched, "artifacts", "get", str(origin), "distilbert", "--rev", "v1.0.0", "-o", "v1")
    dvc(fetched, "artifacts", "get", str(origin), "distilbert", "-o", "latest")
    assert not (fetched / "v1/NOTES.txt").exists()
    assert (fetched / "latest/NOTES.txt").read_text() == "second version\n"
    assert (fetched / "v1/tokenize_config.json").exists()

    result = run(
        [
            sys.executable,
            "-m",
            "imdb_sentiment.cli.predict",
            "--model-dir",
            "v1",
            "--format",
            "jsonl",
        ]
        + ["A wonderful, moving film."],
        cwd=fetched,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    # The released version's own score of the review, not the latest's.
    [p_positive] = load_scorer("distilbert", "torch", fetched / "v1").proba(
        ["A wonderful, moving film."]
    )
    assert len(rows) == 1 and rows[0]["p_positive"] == round(float(p_positive), 6)
    assert rows[0]["label"] == ("POSITIVE" if p_positive >= 0.5 else "NEGATIVE")


def test_release_refuses_what_it_cannot_publish(model_repo: tuple[Path, Path]) -> None:
    repo, _ = model_repo
    git(repo, "push", "-q", "-u", "origin", "main")
    assert last_error(release(repo, "distilbert", "1.0", check=False)) == (
        "error: VERSION=1.0: not a version such as 1.0.0"
    )
    assert last_error(release(repo, "bert", "1.0.0", check=False)).startswith(
        "error: NAME=bert: not an artifact of dvc.yaml (declared: distilbert, distilbert-onnx"
    )
    (repo / "models/distilbert/NOTES.txt").write_text("not added\n")
    assert last_error(release(repo, "distilbert", "1.0.0", check=False)).startswith(
        "error: the pipeline is not up to date (dvc status)"
    )
    (repo / "models/distilbert/NOTES.txt").unlink()
    (repo / "untracked.txt").write_text("x")
    assert last_error(release(repo, "distilbert", "1.0.0", check=False)).startswith(
        "error: the workspace has uncommitted changes"
    )
    (repo / "untracked.txt").unlink()
    release(repo, "distilbert", "1.0.0")
    assert last_error(release(repo, "distilbert", "v1.0.0", check=False)) == (
        "error: tag distilbert@v1.0.0 already exists: release a higher VERSION"
    )
