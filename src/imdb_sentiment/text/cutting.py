"""How a review becomes the token ids a transformer reads: tokenized whole, cut to
`max_length` as `truncation` says, framed with the tokenizer's special tokens.

The one place that decides how training, evaluation and prediction see a long review:
`tokenize` records its settings in `tokenize_config.json`, which training copies beside
the model, so that `predict` and `score` cut new reviews exactly the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.params import Params

Truncation = Literal["head", "tail", "head_tail"]
TOKENIZE_CONFIG_NAME = "tokenize_config.json"


class CutParams(Params):
    """How `tokenize` cut the reviews: what `tokenize_config.json` records beside a model."""

    max_length: int = Field(512, ge=8, le=8192)
    truncation: Truncation = "head_tail"
    # With head_tail: how many tokens to keep from the start, the rest from the end. null
    # keeps a quarter of max_length (Sun et al. 2019: 128 of 512 is best for IMDb).
    head_tokens: int | None = Field(None, ge=0, validate_default=True)

    @field_validator("head_tokens")
    @classmethod
    def _head_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        max_length = info.data.get("max_length")
        if max_length is None:  # max_length itself was invalid: reported on its own
            return value
        if value is None:
            return max_length // 4
        if value > max_length - 2:
            raise ValueError(
                f"must leave room in max_length={max_length} (at most {max_length - 2}); "
                "null keeps a quarter of it"
            )
        return value


def truncate_ids(ids: Sequence[int], budget: int, mode: Truncation, head_tokens: int) -> list[int]:
    """Cut a review's token ids (no special tokens) to at most `budget` tokens.

    `head` keeps the start, `tail` the end, `head_tail` the first `head_tokens` and the last
    `budget - head_tokens` (Sun et al. 2019 found 128 + 382 best for IMDb with BERT).
    """
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if mode == "head":
        return ids[:budget]
    if mode == "tail":
        return ids[len(ids) - budget :]
    head = min(head_tokens, budget)
    tail = budget - head
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])


def special_token_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text ([CLS] and [SEP] for BERT),
    found by encoding one word with and without them, so any model family works."""
    body = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(body) + 1):
        if full[start : start + len(body)] == body:
            return full[:start], full[start + len(body) :]
    raise StageError(
        "model.name: cannot find where its tokenizer puts the text between special tokens"
    )


class IdCutter:
    """Cuts a review's token ids (no special tokens) to fit `max_length` as `truncation`
    says and frames them with the tokenizer's special tokens."""

    def __init__(self, tokenizer: Any, config: CutParams) -> None:
        self.prefix, self.suffix = special_token_frame(tokenizer)
        # How many of the review's own tokens fit beside the special tokens.
        self.budget = config.max_length - len(self.prefix) - len(self.suffix)
        self.truncation = config.truncation
        self.head_tokens = config.head_tokens

    def __call__(self, ids: Sequence[int]) -> list[int]:
        body = truncate_ids(ids, self.budget, self.truncation, self.head_tokens)
        return self.prefix + body + self.suffix


def read_cut_config(model_dir: Path) -> CutParams:
    """How training cut the ids: `tokenize_config.json` beside the model."""
    path = Path(model_dir) / TOKENIZE_CONFIG_NAME
    if not path.exists():
        raise StageError(f"{path} is missing: the model folder must come from train_distilbert")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return CutParams.model_validate(
            {key: raw[key] for key in CutParams.model_fields if key in raw}
        )
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise StageError(f"{path}: not a valid tokenize config ({first})") from exc


def check_fits_model(config: CutParams, model_config: Any, where: str) -> None:
    """Stop when reviews cut to `max_length` would not fit the model's positions."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int) and config.max_length > positions:
        raise StageError(
            f"{where}: max_length {config.max_length} exceeds the model's {positions} positions"
        )
