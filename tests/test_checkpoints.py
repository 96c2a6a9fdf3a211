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


def make_checkpoint(
    folder: Path, step: int, complete: bool = True, run: str = "run-a", **state: object
) -> Path:
    """A checkpoint as the Trainer and the stage leave it: its files, trainer_state.json
    (`state` overrides its values) and the run's stamp (left out when not `complete`)."""
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    files = checkpoints.CHECKPOINT_FILES if complete else checkpoints.CHECKPOINT_FILES[:-1]
    for name in files:
        (checkpoint / name).write_text("x")
    (checkpoint / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "epoch": step / 10, **state})
    )
    if complete:
        (checkpoint / checkpoints.STAMP_FILE).write_text(json.dumps({"fingerprint": run}))
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


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_a_checkpoint_that_does_not_fit_the_run_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its trainer_state.json is what the Trainer resumes from: a step past the run's end
    would train nothing and report that step as done, a negative epoch train backwards."""
    folder = tmp_path / "checkpoints"
    limits = checkpoints.RunLimits(max_steps=100, epochs=3)
    checkpoints.prepare_checkpoints(folder, "run-a", is_main=True, limits=limits)
    make_checkpoint(folder, 10)
    bad = {
        20: {"global_step": 10**12},  # not the step of its name
        10**12: {"global_step": 10**12},  # past this run's steps
        30: {"epoch": -5},
        40: {"epoch": float("inf")},
        50: {"global_step": "50"},
        60: {"global_step": True},
        70: {"epoch": 3.5},
    }
    for step, state in bad.items():
        make_checkpoint(folder, step, **state)
    make_checkpoint(folder, 80, run="run-b")  # another run's stamp, in this run's folder
    before = tree(folder)
    # Another process of the run reaches the same answer and moves nothing.
    assert (
        checkpoints.prepare_checkpoints(folder, "run-a", False, limits) == folder / "checkpoint-10"
    )
    assert tree(folder) == before
    assert (
        checkpoints.prepare_checkpoints(folder, "run-a", True, limits) == folder / "checkpoint-10"
    )
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(
        ["checkpoint-10", MARKER_FILE] + [f"set-aside-checkpoint-{step}" for step in (*bad, 80)]
    )
    # Renamed, nothing deleted, nothing changed.
    renamed = {name.replace("set-aside-", "", 1): text for name, text in tree(folder).items()}
    assert renamed == before
    warnings = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(warnings) == len(bad) + 1
    assert any("global_step 1000000000000 is outside this run's 1 to 100" in w for w in warnings)
    assert any("epoch -5 is outside this run's 0 to 3" in w for w in warnings)
    assert any("its stamp is not of this run" in w for w in warnings)


def test_a_second_set_aside_keeps_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    limits = checkpoints.RunLimits(max_steps=100, epochs=3)
    checkpoints.prepare_checkpoints(folder, "run-a", is_main=True, limits=limits)
    for _ in range(2):
        make_checkpoint(folder, 20, epoch=-1)
        assert checkpoints.prepare_checkpoints(folder, "run-a", True, limits) is None
    names = sorted(path.name for path in folder.iterdir())
    assert names == [MARKER_FILE, "set-aside-checkpoint-20", "set-aside-checkpoint-20-2"]


def test_run_limits_bound_the_steps_of_any_batch_and_epoch_count() -> None:
    assert checkpoints.run_limits(150, 8, 10) == checkpoints.RunLimits(190, 10)
    assert checkpoints.run_limits(150, 8 * 2, 2.5) == checkpoints.RunLimits(30, 2.5)
