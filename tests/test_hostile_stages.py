"""Faults and odd data in the stages: a full disk, a failure part-way through writing the
outs, a tiny training split, a Hub that does not answer, reviews the test split shares
with the training data, data folders holding FIFOs, devices and looping links, columns of
the wrong type. Each ends in one `error:` line, a counted skip or a correct run; none
leaves a half-replaced out or touches a file the stage does not own."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_PARAMS, make_reviews, set_params, write_frames, write_parquet_source

from imdb_sentiment.classical import training as classical_training
from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.stages import prepare, train_distilbert, train_linear, train_rf
from imdb_sentiment.text.cleaning import clean_text


def error_line(capsys: pytest.CaptureFixture[str], main) -> str:
    with pytest.raises(SystemExit) as exited:
        run_stage(main)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert not any("Traceback" in line for line in err), err
    return err[-1]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_full_disk_is_one_line_naming_the_path(
    in_tmp_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_parquet_source(in_tmp_project / "source")
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    (in_tmp_project / "mine.txt").write_text("a user's file")
    before = tree(in_tmp_project)

    def no_space(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_space)
    line = error_line(capsys, prepare.main)
    assert line.startswith("error: ") and "data/.prepared.tmp-" in line, line
    assert line.endswith(": No space left on device")
    assert tree(in_tmp_project) == before  # nothing half-written stays


def tree_but_params(root: Path) -> dict[str, bytes]:
    """`tree(root)` less params.yaml, which a test changes between two runs."""
    files = tree(root)
    files.pop("params.yaml")
    return files


@pytest.fixture
def linear_trained(in_tmp_project: Path) -> Path:
    """A project whose `train_linear` has run once, on the tiny frames."""
    set_params(in_tmp_project / "params.yaml", TINY_PARAMS)
    write_frames(in_tmp_project)
    train_linear.main()
    return in_tmp_project


def test_no_out_is_replaced_unless_all_are_written(
    linear_trained: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (linear_trained / "models/notes.md").write_text("beside the outs")
    before = tree_but_params(linear_trained)

    def read_only(payload: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system", "metrics/validation/linear.json")

    set_params(linear_trained / "params.yaml", {"train_linear.C": 0.5})
    monkeypatch.setattr(classical_training, "json_text", read_only)
    line = error_line(capsys, train_linear.main)
    assert line == "error: metrics/validation/linear.json: Read-only file system"
    # The old model and metrics are both still there, unchanged.
    assert tree_but_params(linear_trained) == before


def test_ctrl_c_while_the_outs_are_written_is_one_line_and_changes_nothing(
    linear_trained: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_but_params(linear_trained)

    def interrupted(payload: object) -> str:
        raise KeyboardInterrupt

    set_params(linear_trained / "params.yaml", {"train_linear.C": 0.5})
    monkeypatch.setattr(classical_training, "json_text", interrupted)
    with pytest.raises(SystemExit) as exited:
        run_stage(train_linear.main)
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: interrupted"
    # No half-written out, no temporary sibling left.
    assert tree_but_params(linear_trained) == before


def test_a_training_split_smaller_than_the_folds_still_trains(in_tmp_project: Path) -> None:
    set_params(in_tmp_project / "params.yaml", TINY_PARAMS)
    tiny = make_reviews(6, seed=3)  # 3 reviews of each class: fewer than 5 folds
    write_frames(in_tmp_project, {"train": tiny, "validation": tiny, "test": tiny})
    train_rf.main()
    summary = json.loads((in_tmp_project / "summaries/train_rf.json").read_text())
    assert summary["train_reviews"] == 6


def test_push_to_hub_with_a_token_but_no_hub_stops_before_training(
    in_tmp_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_0000000000")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    set_params(
        in_tmp_project / "params.yaml",
        {"train_distilbert.push_to_hub": True, "train_distilbert.hub_model_id": "me/imdb"},
    )
    before = tree(in_tmp_project)
    line = error_line(capsys, train_distilbert.main)
    assert line.startswith(
        "error: train_distilbert.push_to_hub: the Hugging Face Hub cannot be reached"
    ), line
    assert "hf_not_a_real_token" not in line
    assert tree(in_tmp_project) == before
    assert not (in_tmp_project / "checkpoints").exists()


def test_test_reviews_also_in_train_are_counted_and_can_be_dropped(
    in_tmp_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = in_tmp_project / "source"
    source.mkdir()
    train, test = make_reviews(60, seed=1), make_reviews(20, seed=2)
    shared = test.iloc[:4]
    pd.concat([train, shared]).to_parquet(source / "train.parquet", index=False)
    test.to_parquet(source / "test.parquet", index=False)
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})

    prepare.main()
    summary = json.loads((in_tmp_project / "summaries/prepare.json").read_text())
    assert summary["test_reviews_also_in_train"] == 4
    assert "4 test review(s) also occur word for word" in caplog.text

    set_params(in_tmp_project / "params.yaml", {"prepare.drop_test_overlap": True})
    prepare.main()
    summary = json.loads((in_tmp_project / "summaries/prepare.json").read_text())
    assert summary["test_reviews_also_in_train"] == 4  # found, then dropped
    kept = pd.concat(
        pd.read_parquet(in_tmp_project / f"data/prepared/{split}.parquet")
        for split in ("train", "validation")
    )
    test_texts = set(pd.read_parquet(in_tmp_project / "data/prepared/test.parquet")["text"])
    assert not set(kept["text"]) & test_texts
    dropped = summary["dropped"]
    assert dropped.get("train_test_overlap", 0) + dropped.get("validation_test_overlap", 0) == 4


# --- data folders read regular files only, every column of the right type ------------------


@pytest.mark.timeout(120)
def test_an_aclimdb_folder_with_fifos_devices_and_looping_links_is_read_without_them(
    in_tmp_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A FIFO would wait forever for a writer; each such entry is skipped and counted."""
    import os

    from helpers import write_aclimdb

    source = write_aclimdb(in_tmp_project / "raw", n_train=40, n_test=20)
    pos = source / "train" / "pos"
    os.mkfifo(pos / "9001_10.txt")
    (pos / "9002_10.txt").symlink_to(pos / "9003_10.txt")
    (pos / "9003_10.txt").symlink_to(pos / "9002_10.txt")  # a loop
    (pos / "9004_10.txt").symlink_to(os.devnull)  # a character device
    (pos / "9005_10.txt").symlink_to(pos / "nothing.txt")  # a link to nothing
    (pos / "9006_10.txt").mkdir()
    (pos / "9007_10.txt").symlink_to(next(pos.glob("1_*.txt")))  # a link to a review: read
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    prepare.main()
    summary = json.loads((in_tmp_project / "summaries/prepare.json").read_text())
    assert summary["rows"]["train"] + summary["rows"]["validation"] == 41
    [warning] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert warning.startswith(f"{pos}: skipped 6 entries that are not a regular file: ")
    assert "9001_10.txt (a FIFO)" in warning and "; ..." in warning


@pytest.mark.timeout(120)
def test_a_parquet_split_that_is_a_fifo_is_one_line(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    source = write_parquet_source(in_tmp_project / "source")
    (source / "test.parquet").unlink()
    os.mkfifo(source / "test.parquet")
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    line = error_line(capsys, prepare.main)
    assert line == f"error: {source / 'test.parquet'}: a FIFO, not a regular file"


def parquet_with(root: Path, **columns: object) -> Path:
    """train.parquet with `columns` (text and label unless replaced), a good test.parquet."""
    root.mkdir(parents=True)
    frame = make_reviews(20)
    table = {"text": frame["text"].tolist(), "label": frame["label"].tolist(), **columns}
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(table), root / "train.parquet")
    make_reviews(10).to_parquet(root / "test.parquet", index=False)
    return root


REVIEWS = make_reviews(20)["text"].tolist()
LABELS = make_reviews(20)["label"].tolist()


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"text": list(range(20))}, "column 'text' holds int64, not text"),
        ({"text": [float(i) for i in range(20)]}, "column 'text' holds float64, not text"),
        (
            {"text": [text.encode() for text in REVIEWS[:5]] + [b"caf\xe9"] + REVIEWS[6:]},
            "row 6: text is not UTF-8 (unexpected end of data at byte 3)",
        ),
        ({"label": [float(label) for label in LABELS]}, "column 'label' holds float64, not"),
        ({"label": [bool(label) for label in LABELS]}, "column 'label' holds bool, not"),
        ({"label": [str(label) for label in LABELS]}, "column 'label' holds "),
    ],
    ids=["int-text", "float-text", "binary-not-utf8", "float-label", "bool-label", "str-label"],
)
def test_every_column_is_checked_on_load(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], columns: dict, message: str
) -> None:
    source = parquet_with(in_tmp_project / "p", **columns)
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    line = error_line(capsys, prepare.main)
    assert line.startswith(f"error: {source / 'train.parquet'}: {message}"), line
    assert not (in_tmp_project / "data/prepared").exists()


def test_binary_text_that_is_utf8_is_read_as_text(in_tmp_project: Path) -> None:
    source = parquet_with(in_tmp_project / "p", text=[text.encode() for text in REVIEWS])
    set_params(in_tmp_project / "params.yaml", {"data.source": str(source)})
    prepare.main()
    prepared = pd.concat(
        pd.read_parquet(in_tmp_project / f"data/prepared/{split}.parquet")
        for split in ("train", "validation")
    )
    cleaned = [clean_text(t, clean_html=True, normalize_whitespace=True) for t in REVIEWS]
    assert sorted(prepared["text"]) == sorted(cleaned)
