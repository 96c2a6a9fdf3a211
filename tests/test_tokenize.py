"""Unit tests of the tokenize stage: truncation modes, both outputs, and bad params."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import set_params, write_aclimdb

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.paths import TOKENIZED_DIR, TOKENIZED_FRAME_DIR, TOKENIZED_HF_DIR
from imdb_sentiment.stages import prepare, tokenize
from imdb_sentiment.text.cutting import truncate_ids


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("head", [0, 1, 2, 3, 4, 5]),
        ("tail", [4, 5, 6, 7, 8, 9]),
        ("head_tail", [0, 1, 6, 7, 8, 9]),
    ],
)
def test_truncate_ids_modes(mode: str, expected: list[int]) -> None:
    assert truncate_ids(range(10), 6, mode, head_tokens=2) == expected
    # Short reviews are never cut, whatever the mode.
    assert truncate_ids([1, 2, 3], 6, mode, head_tokens=2) == [1, 2, 3]


def test_head_tail_with_all_budget_in_the_head() -> None:
    assert truncate_ids(range(10), 4, "head_tail", head_tokens=4) == [0, 1, 2, 3]


@pytest.fixture
def prepared_project(in_tmp_project: Path, tiny_model_dir: Path) -> Path:
    source = write_aclimdb(in_tmp_project / "raw", n_train=24, n_test=12)
    set_params(
        in_tmp_project / "params.yaml",
        {
            "data.source": str(source),
            "model.name": str(tiny_model_dir),
            "prepare.validation_size": 0.25,
            "tokenize.batch_size": 5,
        },
    )
    prepare.main()
    return in_tmp_project


@pytest.mark.parametrize("mode", ["head", "tail", "head_tail"])
def test_tokenize_writes_frame_and_dataset(
    prepared_project: Path, tiny_model_dir: Path, mode: str
) -> None:
    import datasets
    from transformers import AutoTokenizer

    set_params(
        prepared_project / "params.yaml",
        {"tokenize.truncation": mode, "tokenize.max_length": 16, "tokenize.head_tokens": 5},
    )
    tokenize.main()

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    dataset = datasets.load_from_disk(str(TOKENIZED_HF_DIR))
    assert set(dataset) == {"train", "validation", "test"}
    for split in ("train", "validation", "test"):
        frame = pd.read_parquet(TOKENIZED_FRAME_DIR / f"{split}.parquet")
        prepared = pd.read_parquet(Path("data/prepared") / f"{split}.parquet")
        assert list(frame.columns) == ["review_id", "text", "label", "tokens", "n_tokens"]
        assert frame["text"].tolist() == prepared["text"].tolist()
        assert len(dataset[split]) == len(frame)
        assert dataset[split]["label"] == frame["label"].tolist()
        # prepare's key, in both views, row for row.
        assert frame["review_id"].tolist() == prepared["review_id"].tolist()
        assert dataset[split]["review_id"] == prepared["review_id"].tolist()
        for text, tokens, n_tokens, ids, length in zip(
            frame["text"],
            frame["tokens"],
            frame["n_tokens"],
            dataset[split]["input_ids"],
            dataset[split]["length"],
            strict=True,
        ):
            whole = tokenizer(text, add_special_tokens=False)["input_ids"]
            # The frame keeps the whole review's tokens; the dataset the cut, framed ids.
            assert tokens.split(" ") == tokenizer.convert_ids_to_tokens(whole)
            assert n_tokens == len(whole)
            assert length == len(ids) == min(16, len(whole) + 2)
            assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            assert ids[1:-1] == truncate_ids(whole, 14, mode, 5)

    summary = json.loads(Path("summaries/tokenize.json").read_text())
    assert 0 < summary["train"]["share_over_max_length"] <= 1
    config = json.loads((TOKENIZED_DIR / "tokenize_config.json").read_text())
    assert config["truncation"] == mode and config["max_length"] == 16


def test_tokenize_needs_prepared_data(in_tmp_project: Path, tiny_model_dir: Path) -> None:
    set_params(in_tmp_project / "params.yaml", {"model.name": str(tiny_model_dir)})
    with pytest.raises(StageError, match=r"data/prepared/train\.parquet is missing"):
        tokenize.main()
    assert not TOKENIZED_DIR.exists()


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"tokenize.truncation": "middle"}, r"tokenize\.truncation = 'middle'"),
        ({"tokenize.max_length": 4}, r"tokenize\.max_length = 4"),
        ({"tokenize.max_length": 1024}, r"tokenize\.max_length = 1024: .*at most 512"),
        (
            {"tokenize.head_tokens": 600},
            r"^params\.yaml: tokenize\.head_tokens = 600: must leave room in max_length=512",
        ),
        ({"tokenize.batch": 8}, r"unknown key tokenize\.batch"),
        ({"model.name": "./no-such-model"}, r"model\.name='\./no-such-model'"),
    ],
)
def test_bad_params_fail_with_one_line(
    in_tmp_project: Path, tiny_model_dir: Path, updates: dict, message: str
) -> None:
    set_params(in_tmp_project / "params.yaml", {"model.name": str(tiny_model_dir), **updates})
    with pytest.raises(StageError, match=message):
        tokenize.main()
    assert not TOKENIZED_DIR.exists()


def test_unreachable_hub_model_names_the_param(in_tmp_project: Path) -> None:
    set_params(in_tmp_project / "params.yaml", {"model.name": "distilbert/distilbert-base-uncased"})
    with pytest.raises(
        StageError, match=r"Hugging Face Hub.*without network, set model\.name to a local"
    ):
        tokenize.main()
