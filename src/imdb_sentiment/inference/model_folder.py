"""A fine-tuned transformer's folder, checked whole once, before it scores anything.

Every backend (torch, ONNX int8) reads the same three things from its folder: the model's
configuration, the tokenizer, and `tokenize_config.json` (how training cut the reviews).
:func:`open_transformer_folder` loads and checks them together, so every command that
scores with a transformer (`predict`, `score`, `evaluate`, the benchmarks) refuses the same
broken folder with the same line: exactly the two labels at the head, a cut that fits the
model's positions, a tokenizer with its vocabulary (`transformer.loading.check_tokenizer`)
whose every id, special tokens included, is a row of the model's embedding table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.files import check_regular_tree
from imdb_sentiment.core.labels import ID2LABEL
from imdb_sentiment.core.params import short
from imdb_sentiment.text.cutting import (
    TOKENIZE_CONFIG_NAME,
    CutParams,
    check_fits_model,
    read_cut_config,
)
from imdb_sentiment.transformer.loading import check_fits_embeddings, load_config, load_tokenizer

# What decides how a review's ids are cut.
CUT_KEYS = tuple(CutParams.model_fields)


@dataclass(frozen=True)
class TransformerFolder:
    """A checked model folder: its configuration, fast tokenizer and cut."""

    path: Path
    config: Any
    tokenizer: Any
    cut: CutParams


def check_model_dir(model_dir: Path, needed: str) -> None:
    """Stop in one line unless `model_dir` is a folder holding `needed`."""
    if not model_dir.is_dir():
        raise StageError(
            f"{model_dir}: no such model folder (train it with `dvc repro`, fetch it with "
            "`dvc pull` or `dvc artifacts get`)"
        )
    if not (model_dir / needed).exists():
        raise StageError(f"{model_dir}: {needed} is missing; is this a trained model folder?")
    check_regular_tree(model_dir)


def check_labels(config: Any, where: str) -> None:
    """Exactly the project's two labels, 1 being POSITIVE (the class every score is of)."""
    id2label = {int(index): str(name).upper() for index, name in config.id2label.items()}
    if id2label != ID2LABEL or getattr(config, "num_labels", 2) != len(ID2LABEL):
        raise StageError(f"{where}: its labels are {short(id2label)}, not {ID2LABEL}")


def open_transformer_folder(model_dir: Path, weights: str) -> TransformerFolder:
    """Load and check a fine-tuned model folder that holds `weights` (the file a backend
    runs): labels, cut and tokenizer, each in one line when wrong."""
    check_model_dir(model_dir, weights)
    where = str(model_dir)
    config = load_config(where, param=None)
    check_labels(config, where)
    cut = read_cut_config(model_dir)
    check_fits_model(cut, config, str(model_dir / TOKENIZE_CONFIG_NAME))
    tokenizer = load_tokenizer(where, param=None)
    check_fits_embeddings(tokenizer, config, where)
    return TransformerFolder(model_dir, config, tokenizer, cut)


def check_same_cut(folder: TransformerFolder, tokenized_dir: Path) -> None:
    """Stop when the ids in `tokenized_dir` were cut otherwise than the model was trained on."""
    cut = read_cut_config(tokenized_dir)
    if any(getattr(cut, key) != getattr(folder.cut, key) for key in CUT_KEYS):
        raise StageError(
            f"{folder.path} was trained on ids cut otherwise than {tokenized_dir}: run `dvc repro`"
        )
