"""Loading from the Hugging Face Hub or a local folder, safely and with one-line errors.

Every tokenizer, config and model the project loads goes through here, with
`trust_remote_code=False`: a model folder whose `config.json` (or tokenizer config) names
Python code of its own (`auto_map`) is refused, never run, and transformers never asks on
stdin. A tokenizer is checked whole: a local folder must hold its vocabulary (without one,
transformers builds a tokenizer of the special tokens alone, which reads every word as
[UNK]), and the padding, unknown and framing tokens must be ids of that vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.files import check_regular_tree
from imdb_sentiment.core.hub import LOCAL_HINT, T, is_local_path, load_from_hub
from imdb_sentiment.text.cutting import special_token_frame


def _label(name: str, param: str | None) -> str:
    return f"{param}={name!r}" if param else name


# The files in which a model folder can name Python code of its own for transformers to
# import, and the keys that do it.
CODE_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json")
CODE_KEYS = ("auto_map", "custom_pipelines")
# A folder holds a tokenizer's vocabulary when it has one of these (fast, WordPiece, BPE,
# SentencePiece); tokenizer_config.json alone names only the special tokens.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def refuse_remote_code(folder: Path, param: str | None = None) -> None:
    """Stop when a local model folder's configs ask to run code of their own."""
    for name in CODE_CONFIGS:
        config = folder / name
        if not config.is_file():
            continue
        try:
            content = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise StageError(f"{_label(str(folder), param)}: {name} is not valid JSON") from exc
        if not isinstance(content, dict):
            raise StageError(f"{_label(str(folder), param)}: {name} is not a JSON object")
        named = [key for key in CODE_KEYS if content.get(key)]
        if named:
            raise StageError(
                f"{_label(str(folder), param)}: {name} names code of its own "
                f"({', '.join(named)}); this project never runs code from a model folder"
            )


def _load(
    load: Callable[[], T], name: str, param: str | None, what: str, needed: tuple[str, ...]
) -> T:
    """`load()` of a hub id, or of a local folder that holds one of the `needed` files and
    names no code of its own; any failure is one line."""
    where = _label(name, param)
    if not is_local_path(name):
        return load_from_hub(load, param=param or "model", value=name, hint=LOCAL_HINT)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise StageError(f"{where}: no such folder")
    check_regular_tree(folder)
    refuse_remote_code(folder, param)
    if not any((folder / file).is_file() for file in needed):
        raise StageError(f"{where}: no {what} there (none of {', '.join(needed)})")
    try:
        return load()
    except Exception as exc:  # transformers, safetensors and tokenizers raise many types
        raise StageError(
            f"{where}: cannot load the {what} ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc


def load_tokenizer(name: str, param: str | None = "model.name") -> Any:
    """The fast tokenizer of `name` (a hub id or a local directory), checked whole."""
    from transformers import AutoTokenizer

    tokenizer = _load(
        lambda: AutoTokenizer.from_pretrained(name, trust_remote_code=False),
        name,
        param,
        "tokenizer",
        TOKENIZER_FILES,
    )
    if not getattr(tokenizer, "is_fast", False):
        raise StageError(f"{_label(name, param)}: no fast tokenizer there")
    check_tokenizer(tokenizer, _label(name, param))
    return tokenizer


def check_tokenizer(tokenizer: Any, where: str) -> None:
    """Stop in one line unless the tokenizer has a vocabulary beyond its special tokens and
    its padding, unknown and framing tokens ([CLS], [SEP]) are ids of that vocabulary."""
    ids = set(tokenizer.get_vocab().values())
    specials = set(tokenizer.all_special_ids)
    if not ids - specials:
        raise StageError(
            f"{where}: its tokenizer holds only its {len(specials)} special tokens, no "
            "vocabulary (is vocab.txt or tokenizer.json missing?)"
        )
    if tokenizer.pad_token_id is None:
        raise StageError(f"{where}: its tokenizer has no padding token")
    prefix, suffix = special_token_frame(tokenizer)
    named = {"pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
    named.update({f"frame[{i}]": token for i, token in enumerate([*prefix, *suffix])})
    for role, token in named.items():
        if token is not None and token not in ids:
            raise StageError(f"{where}: its {role} token id {token} is not in its vocabulary")


def check_fits_embeddings(tokenizer: Any, config: Any, where: str) -> None:
    """Stop when the tokenizer can produce an id past the model's embedding table."""
    vocab_size = getattr(config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        return
    largest = max(tokenizer.get_vocab().values())
    if len(tokenizer) > vocab_size or largest >= vocab_size:
        raise StageError(
            f"{where}: its tokenizer has {len(tokenizer)} tokens (ids up to {largest}), more "
            f"than the model's {vocab_size}"
        )


def load_classifier(name: str, param: str | None = "model.name", **kwargs: Any) -> Any:
    """A sequence-classification model from `name`; `kwargs` go to `from_pretrained`."""
    from transformers import AutoModelForSequenceClassification

    return _load(
        lambda: AutoModelForSequenceClassification.from_pretrained(
            name, trust_remote_code=False, **kwargs
        ),
        name,
        param,
        "model",
        ("config.json",),
    )


def load_config(name: str, param: str | None = "model.name") -> Any:
    """The model's configuration (`config.json`), read by transformers' `AutoConfig`."""
    from transformers import AutoConfig

    return _load(
        lambda: AutoConfig.from_pretrained(name, trust_remote_code=False),
        name,
        param,
        "model configuration",
        ("config.json",),
    )
