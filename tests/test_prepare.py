"""Unit tests of the prepare stage: each source kind, cleaning, splits, and each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_reviews, set_params, write_aclimdb, write_parquet_source

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.paths import PREPARED_DIR
from imdb_sentiment.data.splits import PrepareParams
from imdb_sentiment.stages import prepare
from imdb_sentiment.text.cleaning import clean_text


def run_prepare(project: Path, **params: object) -> dict[str, pd.DataFrame]:
    set_params(project / "params.yaml", params)
    prepare.main()
    return {split: pd.read_parquet(PREPARED_DIR / f"{split}.parquet") for split in prepare_splits()}


def prepare_splits() -> tuple[str, ...]:
    return ("train", "validation", "test")


def test_clean_text_strips_html_and_whitespace() -> None:
    raw = "Great  film.<br /><br />Loved it &amp; <i>the</i> cast!\n"
    assert clean_text(raw, clean_html=True, normalize_whitespace=True) == (
        "Great film. Loved it & the cast!"
    )
    assert clean_text(raw, clean_html=False, normalize_whitespace=False) == raw
    # A lone "<3" is not a tag and stays.
    assert clean_text("I <3 it", clean_html=True, normalize_whitespace=True) == "I <3 it"


def test_aclimdb_source_gives_stratified_seeded_splits(in_tmp_project: Path) -> None:
    source = write_aclimdb(in_tmp_project / "raw", n_train=40, n_test=20)
    splits = run_prepare(in_tmp_project, **{"data.source": str(source)})
    assert {name: len(frame) for name, frame in splits.items()} == {
        "train": 36,
        "validation": 4,
        "test": 20,
    }
    for frame in splits.values():
        assert list(frame.columns) == ["review_id", "text", "label"]
        assert frame["label"].mean() == 0.5
        assert not frame["text"].str.contains("<br").any()
    # The validation split is carved out of train: no review is in both.
    assert not set(splits["validation"]["text"]) & set(splits["train"]["text"])
    summary = json.loads(Path("summaries/prepare.json").read_text())
    assert summary["rows"] == {"train": 36, "validation": 4, "test": 20}

    again = run_prepare(in_tmp_project)
    for name in splits:
        pd.testing.assert_frame_equal(splits[name], again[name])


def test_aclimdb_parent_folder_is_accepted(in_tmp_project: Path) -> None:
    write_aclimdb(in_tmp_project / "raw", n_train=20, n_test=10)
    splits = run_prepare(in_tmp_project, **{"data.source": str(in_tmp_project / "raw")})
    assert len(splits["test"]) == 10


def test_parquet_source_and_caps(in_tmp_project: Path) -> None:
    source = write_parquet_source(in_tmp_project / "parquet", n_train=60, n_test=30)
    splits = run_prepare(
        in_tmp_project,
        **{
            "data.source": str(source),
            "prepare.validation_size": 0.2,
            "prepare.max_train_samples": 10,
            "prepare.max_test_samples": 8,
        },
    )
    assert {name: len(frame) for name, frame in splits.items()} == {
        "train": 10,
        "validation": 12,
        "test": 8,
    }
    assert splits["train"]["label"].sum() == 5


def test_hub_source_is_loaded_with_datasets(
    in_tmp_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    train, test = make_reviews(20, seed=1), make_reviews(10, seed=2)
    fake = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_pandas(train),
            "test": datasets.Dataset.from_pandas(test),
            "unsupervised": datasets.Dataset.from_dict({"text": ["x"], "label": [-1]}),
        }
    )
    requested = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name: requested.append(name) or fake)
    splits = run_prepare(in_tmp_project, **{"data.source": "stanfordnlp/imdb"})
    assert requested == ["stanfordnlp/imdb"]
    assert len(splits["train"]) + len(splits["validation"]) == 20
    assert len(splits["test"]) == 10


def test_unreachable_hub_names_the_param(in_tmp_project: Path) -> None:
    # HF_HUB_OFFLINE=1 (set by the fixture) makes the hub unreachable at once.
    set_params(in_tmp_project / "params.yaml", {"data.source": "stanfordnlp/imdb"})
    with pytest.raises(StageError, match=r"data\.source='stanfordnlp/imdb'.*set data\.source"):
        prepare.main()
    assert not PREPARED_DIR.exists()


def test_empty_reviews_are_dropped_and_counted(
    in_tmp_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_parquet_source(in_tmp_project / "parquet", n_train=40, n_test=20)
    frame = pd.read_parquet(source / "train.parquet")
    frame.loc[0, "text"] = "  <br /> "
    frame.loc[1, "text"] = None
    frame.to_parquet(source / "train.parquet", index=False)
    splits = run_prepare(in_tmp_project, **{"data.source": str(source)})
    assert len(splits["train"]) + len(splits["validation"]) == 38
    assert "train: dropped 2 empty review(s)" in caplog.text
    summary = json.loads(Path("summaries/prepare.json").read_text())
    assert summary["dropped"]["train_empty"] == 2


def test_review_id_is_the_position_in_the_source_split_after_drops_and_caps(
    in_tmp_project: Path,
) -> None:
    source = write_parquet_source(in_tmp_project / "parquet", n_train=60, n_test=30)
    raw = {split: pd.read_parquet(source / f"{split}.parquet") for split in ("train", "test")}
    raw["train"].loc[3, "text"] = " <br /> "  # dropped as empty: id 3 names no review
    raw["train"].to_parquet(source / "train.parquet", index=False)
    splits = run_prepare(
        in_tmp_project,
        **{
            "data.source": str(source),
            "prepare.max_train_samples": 20,
            "prepare.max_test_samples": 12,
        },
    )
    for split, frame in splits.items():
        origin = raw["test" if split == "test" else "train"]
        # The key finds each review, and its label, in the source split as it came.
        for review_id, text, label in zip(
            frame["review_id"], frame["text"], frame["label"], strict=True
        ):
            assert (
                clean_text(origin["text"][review_id], clean_html=True, normalize_whitespace=True)
                == text
            )
            assert origin["label"][review_id] == label
        assert frame["review_id"].is_unique
    assert 3 not in set(splits["train"]["review_id"]) | set(splits["validation"]["review_id"])
    # Train and validation come from one source split: no key in both.
    assert not set(splits["train"]["review_id"]) & set(splits["validation"]["review_id"])


def test_duplicates_dropped_only_when_asked(in_tmp_project: Path) -> None:
    source = write_parquet_source(in_tmp_project / "parquet", n_train=40, n_test=20)
    frame = pd.read_parquet(source / "train.parquet")
    pd.concat([frame, frame.iloc[:4]]).to_parquet(source / "train.parquet", index=False)
    kept = run_prepare(in_tmp_project, **{"data.source": str(source)})
    assert len(kept["train"]) + len(kept["validation"]) == 44
    dropped = run_prepare(in_tmp_project, **{"prepare.drop_duplicates": True})
    assert len(dropped["train"]) + len(dropped["validation"]) == 40


def write_bad_parquet(root: Path, train: pd.DataFrame) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train.to_parquet(root / "train.parquet", index=False)
    make_reviews(10).to_parquet(root / "test.parquet", index=False)
    return root


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda root: root / "missing", r"no such file or folder"),
        (lambda root: (root / "empty").mkdir() or root / "empty", r"unknown layout"),
        (
            lambda root: write_bad_parquet(root / "p", make_reviews(20).iloc[:0]),
            r"train split is empty",
        ),
        (
            lambda root: write_bad_parquet(
                root / "p", make_reviews(20).assign(label=[0, 1, 2, 1] * 5)
            ),
            r"5 label\(s\) outside \{0, 1\}, e\.g\. 2",
        ),
        (
            lambda root: write_bad_parquet(root / "p", make_reviews(20).assign(label=1)),
            r"train split holds only label 1",
        ),
        (
            lambda root: write_bad_parquet(root / "p", make_reviews(20).assign(text="  ")),
            r"train split is empty after dropping empty reviews",
        ),
        (
            lambda root: write_bad_parquet(
                root / "p", make_reviews(20).rename(columns={"text": "review"})
            ),
            r"missing column\(s\) \['text'\]",
        ),
    ],
    ids=[
        "missing-path",
        "wrong-layout",
        "empty-split",
        "bad-labels",
        "one-class",
        "all-empty",
        "no-text-column",
    ],
)
def test_bad_sources_fail_with_one_line(in_tmp_project: Path, make_source, message: str) -> None:
    source = make_source(in_tmp_project)
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    with pytest.raises(StageError, match=message):
        prepare.main()
    assert not PREPARED_DIR.exists()


def test_non_utf8_file_is_named(in_tmp_project: Path) -> None:
    source = write_aclimdb(in_tmp_project / "raw", n_train=20, n_test=10)
    bad_file = next((source / "train" / "pos").iterdir())
    bad_file.write_bytes("caf\u00e9 latte".encode("latin-1"))
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    with pytest.raises(StageError, match=rf"{bad_file.name}: not UTF-8 text"):
        prepare.main()


def test_aclimdb_missing_label_folder(in_tmp_project: Path) -> None:
    source = write_aclimdb(in_tmp_project / "raw", n_train=20, n_test=10)
    for path in (source / "test" / "neg").iterdir():
        path.unlink()
    (source / "test" / "neg").rmdir()
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    with pytest.raises(StageError, match=r"test/neg is missing"):
        prepare.main()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("prepare.validation_size", 1.5, r"prepare\.validation_size = 1\.5: .*less than 1"),
        ("prepare.validation_size", "lots", r"prepare\.validation_size = 'lots'"),
        ("prepare.max_train_samples", 1, r"prepare\.max_train_samples = 1"),
        ("prepare.shuffle", True, r"unknown key prepare\.shuffle"),
        ("seed", -1, r"seed = -1"),
    ],
)
def test_bad_params_fail_before_loading(
    in_tmp_project: Path, key: str, value: object, message: str
) -> None:
    # data.source points nowhere: the params check must stop the stage first.
    set_params(in_tmp_project / "params.yaml", {key: value, "data.source": "./nowhere"})
    with pytest.raises(StageError, match=message):
        prepare.main()


def test_float_written_by_dvc_exp_run_is_a_float(in_tmp_project: Path) -> None:
    # `dvc exp run -S prepare.validation_size=2e-1` writes the YAML 1.2 float `2e-01`,
    # which a YAML 1.1 reader would take for a string.
    text = (in_tmp_project / "params.yaml").read_text()
    (in_tmp_project / "params.yaml").write_text(
        text.replace("validation_size: 0.1", "validation_size: 2e-01")
    )
    from imdb_sentiment.core.params import load_params, load_section

    config = load_section(load_params(), "prepare", PrepareParams)
    assert config.validation_size == pytest.approx(0.2)


@pytest.mark.e2e
def test_stage_error_is_one_line_and_exit_status_1(in_tmp_project: Path) -> None:
    import subprocess
    import sys

    from helpers import subprocess_env

    set_params(in_tmp_project / "params.yaml", {"prepare.validation_size": 0})
    env = subprocess_env()
    result = subprocess.run(
        [sys.executable, "-m", "imdb_sentiment.stages.prepare"],
        cwd=in_tmp_project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: params.yaml: prepare.validation_size = 0: Input should be greater than 0"
    ]
