"""Checkpoints of train_distilbert: resume from the last complete one of the same run,
start over on other settings, and never delete anything the stage did not write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY_PARAMS, set_params

from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.stages import train_distilbert as stage
from imdb_sentiment.transformer import checkpoints
from imdb_sentiment.transformer.checkpoints import MARKER_FILE, check_output_dir, pipeline_outs


def make_checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    files = checkpoints.CHECKPOINT_FILES if complete else checkpoints.CHECKPOINT_FILES[:-1]
    for name in files:
        (checkpoint / name).write_text("x")
    if complete:
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return checkpoint


def test_resume_takes_the_last_complete_checkpoint_of_the_same_run(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    assert checkpoints.prepare_checkpoints(folder, "run-a", is_main=True) is None
    make_checkpoint(folder, 10)
    make_checkpoint(folder, 20)
    make_checkpoint(folder, 30, complete=False)  # killed while it was being written
    # Killed while writing trainer_state.json, the last file: present but cut short.
    make_checkpoint(folder, 40)
    (folder / "checkpoint-40/trainer_state.json").write_text('{"global_step": 4')
    resume = checkpoints.prepare_checkpoints(folder, "run-a", is_main=True)
    assert resume == folder / "checkpoint-20"
    # Another process of the same run reads the same answer and changes nothing.
    assert checkpoints.prepare_checkpoints(folder, "run-a", is_main=False) == resume


def test_checkpoints_of_other_params_are_discarded_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    checkpoints.prepare_checkpoints(folder, "run-a", is_main=True)
    make_checkpoint(folder, 10)
    (folder / "notes.txt").write_text("a user's file")
    assert checkpoints.prepare_checkpoints(folder, "run-b", is_main=True) is None
    assert not (folder / "checkpoint-10").exists()
    assert (folder / "notes.txt").read_text() == "a user's file"
    stored = json.loads((folder / MARKER_FILE).read_text())
    assert stored["fingerprint"] == "run-b"


def test_a_finished_run_removes_its_checkpoints_only(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    checkpoints.prepare_checkpoints(folder, "run-a", is_main=True)
    make_checkpoint(folder, 10)
    checkpoints.remove_checkpoints(folder)
    assert not folder.exists()  # it created the folder and left it empty: gone

    checkpoints.prepare_checkpoints(folder, "run-a", is_main=True)
    make_checkpoint(folder, 10)
    (folder / "keep.txt").write_text("x")
    checkpoints.remove_checkpoints(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    # A folder without the marker is never touched.
    (folder / "checkpoint-5").mkdir()
    checkpoints.remove_checkpoints(folder)
    assert (folder / "checkpoint-5").is_dir()


def test_fingerprint_follows_settings_data_and_local_model(tmp_path: Path) -> None:
    data, model = tmp_path / "data", tmp_path / "model"
    data.mkdir()
    model.mkdir()
    (data / "train.arrow").write_bytes(b"abc")
    (model / "config.json").write_text("{}")
    settings = {"seed": 42, "train": {"learning_rate": 1e-3}, "world_size": 1}
    base = checkpoints.run_fingerprint(settings, data, model)
    assert base == checkpoints.run_fingerprint(dict(settings), data, model)
    assert checkpoints.run_fingerprint({**settings, "seed": 43}, data, model) != base
    assert checkpoints.run_fingerprint({**settings, "world_size": 2}, data, model) != base
    (model / "config.json").write_text("{ }")
    assert checkpoints.run_fingerprint(settings, data, model) != base
    (data / "train.arrow").write_bytes(b"abd")
    assert checkpoints.run_fingerprint(settings, data, model) != base


@pytest.fixture
def repo_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder laid out like the project: dvc.yaml, .git, outs, a user's folder."""
    from helpers import PROJECT_ROOT

    (tmp_path / ".git").mkdir()
    (tmp_path / "dvc.yaml").write_text((PROJECT_ROOT / "dvc.yaml").read_text())
    # dvc.yaml fills in params (the artifacts' base model) from params.yaml.
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    (tmp_path / "models/distilbert").mkdir(parents=True)
    (tmp_path / "models/distilbert/model.safetensors").write_text("weights")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/thesis.tex").write_text("a user's work")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("output_dir", "reason"),
    [
        (".", "is the repository or a folder above it"),
        ("..", "is the repository or a folder above it"),
        (".git", "overlaps .git"),
        ("models/distilbert", "overlaps models/distilbert"),
        ("models/distilbert/ckpt", "overlaps models/distilbert"),
        ("data", "overlaps data/prepared"),
        ("metrics/validation/distilbert.json", "overlaps metrics/validation/distilbert.json"),
        ("summaries", "overlaps summaries/prepare.json"),
        ("mine", "holds files this stage did not write"),
    ],
)
def test_unsafe_output_dirs_are_refused(repo_like: Path, output_dir: str, reason: str) -> None:
    with pytest.raises(StageError, match=reason) as error:
        check_output_dir(Path(output_dir), pipeline_outs())
    assert str(error.value).startswith(f"train_distilbert.output_dir = {output_dir!r}")


def test_safe_output_dirs_pass(repo_like: Path) -> None:
    check_output_dir(Path("checkpoints/distilbert"), pipeline_outs())
    (repo_like / "empty").mkdir()
    check_output_dir(Path("empty"), pipeline_outs())
    checkpoints.prepare_checkpoints(repo_like / "ours", "run", is_main=True)
    make_checkpoint(repo_like / "ours", 3)
    check_output_dir(Path("ours"), pipeline_outs())


@pytest.mark.parametrize("output_dir", [".", "mine", "models/distilbert"])
def test_the_stage_stops_before_training_and_deletes_nothing(
    repo_like: Path, capsys: pytest.CaptureFixture[str], output_dir: str
) -> None:
    from helpers import PROJECT_ROOT

    (repo_like / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    set_params(
        repo_like / "params.yaml", {**TINY_PARAMS, "train_distilbert.output_dir": output_dir}
    )
    before = sorted(str(p.relative_to(repo_like)) for p in repo_like.rglob("*"))
    with pytest.raises(SystemExit) as exited:
        run_stage(stage.main)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: train_distilbert.output_dir"), err
    assert sorted(str(p.relative_to(repo_like)) for p in repo_like.rglob("*")) == before
    assert (repo_like / "mine/thesis.tex").read_text() == "a user's work"
