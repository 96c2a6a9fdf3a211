"""tokenize: tokenize every prepared split once with the model's fast tokenizer.

Writes two views of the same tokenization:
- `data/tokenized/frame/{split}.parquet`: a DataFrame per split for the classical models,
  with the cleaned `text`, the `label`, the whole review's WordPiece `tokens` joined by
  spaces (classical models have no length limit, so nothing is cut) and `n_tokens`.
- `data/tokenized/hf/`: a `datasets.DatasetDict` (`save_to_disk`) for the Trainer, with
  `input_ids` cut to `tokenize.max_length` by `tokenize.truncation`, `label` and
  `length` (the cut length, for length-grouped batches).
Summary figures (share of reviews over max_length, mean length) go to
`metrics/tokenize.json`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from tqdm.auto import tqdm

from stages.common import (
    METRICS_DIR,
    PREPARED_DIR,
    SPLITS,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
    ModelParams,
    Params,
    StageError,
    atomic_path,
    is_local_path,
    load_from_hub,
    load_params,
    load_section,
    run_stage,
    write_json,
)

log = logging.getLogger("imdb_sentiment.tokenize")

METRICS_FILE = METRICS_DIR / "tokenize.json"
TOKENIZE_CONFIG_FILE = TOKENIZED_DIR / "tokenize_config.json"
Truncation = Literal["head", "tail", "head_tail"]


class TokenizeParams(Params):
    max_length: int = Field(512, ge=8, le=8192)
    truncation: Truncation = "head_tail"
    # With head_tail: how many tokens to keep from the start; the rest come from the end.
    head_tokens: int = Field(128, ge=0)
    batch_size: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _head_fits(self) -> TokenizeParams:
        if self.truncation == "head_tail" and self.head_tokens > self.max_length - 2:
            raise ValueError(
                f"head_tokens={self.head_tokens} must leave room in max_length={self.max_length}"
            )
        return self


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
    says and frames them with the tokenizer's special tokens; the one place that decides
    how training, evaluation and prediction see a long review."""

    def __init__(self, tokenizer: Any, config: TokenizeParams) -> None:
        self.prefix, self.suffix = special_token_frame(tokenizer)
        # How many of the review's own tokens fit beside the special tokens.
        self.budget = config.max_length - len(self.prefix) - len(self.suffix)
        self.truncation = config.truncation
        self.head_tokens = config.head_tokens

    def __call__(self, ids: Sequence[int]) -> list[int]:
        body = truncate_ids(ids, self.budget, self.truncation, self.head_tokens)
        return self.prefix + body + self.suffix


def load_tokenizer(name: str) -> Any:
    """The fast tokenizer of `model.name` (a hub id or a local directory)."""
    from transformers import AutoTokenizer

    if is_local_path(name):
        try:
            return AutoTokenizer.from_pretrained(name)
        except OSError as exc:
            raise StageError(f"model.name={name!r}: no tokenizer there ({exc})") from exc
    return load_from_hub(
        lambda: AutoTokenizer.from_pretrained(name),
        param="model.name",
        value=name,
        hint="a local directory saved with save_pretrained",
    )


def tokenize_split(
    texts: Sequence[str], tokenizer: Any, config: TokenizeParams, desc: str = "tokenize"
) -> dict[str, list]:
    """Tokenize `texts` in batches; return whole-review tokens and cut, framed input ids."""
    cut = IdCutter(tokenizer, config)
    tokens, n_tokens, input_ids = [], [], []
    with tqdm(total=len(texts), desc=desc, unit="review", mininterval=2) as progress:
        for start in range(0, len(texts), config.batch_size):
            batch = list(texts[start : start + config.batch_size])
            encoded = tokenizer(
                batch,
                add_special_tokens=False,
                truncation=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )
            for index, ids in enumerate(encoded["input_ids"]):
                tokens.append(" ".join(encoded.tokens(index)))
                n_tokens.append(len(ids))
                input_ids.append(cut(ids))
            progress.update(len(batch))
    return {"tokens": tokens, "n_tokens": n_tokens, "input_ids": input_ids}


def main() -> None:
    params = load_params()
    config = load_section(params, "tokenize", TokenizeParams)
    model = load_section(params, "model", ModelParams)

    tokenizer = load_tokenizer(model.name)
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < config.max_length:
        raise StageError(
            f"params.yaml: tokenize.max_length = {config.max_length}: the tokenizer of "
            f"{model.name} allows at most {limit}"
        )

    budget = IdCutter(tokenizer, config).budget
    import datasets

    features = datasets.Features(
        {
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "label": datasets.ClassLabel(names=["NEGATIVE", "POSITIVE"]),
            "length": datasets.Value("int32"),
            "n_tokens": datasets.Value("int32"),
        }
    )
    summary: dict[str, dict[str, float]] = {}
    frames, hf_splits = {}, {}
    for split in SPLITS:
        path = PREPARED_DIR / f"{split}.parquet"
        if not path.exists():
            raise StageError(f"{path} is missing: run `dvc repro prepare` first")
        prepared = pd.read_parquet(path)
        encoded = tokenize_split(prepared["text"].tolist(), tokenizer, config, desc=split)
        frames[split] = pd.DataFrame(
            {
                "text": prepared["text"],
                "label": prepared["label"],
                "tokens": encoded["tokens"],
                "n_tokens": np.asarray(encoded["n_tokens"], dtype=np.int32),
            }
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        hf_splits[split] = datasets.Dataset.from_dict(
            {
                "input_ids": encoded["input_ids"],
                "label": prepared["label"].tolist(),
                "length": lengths,
                "n_tokens": encoded["n_tokens"],
            },
            features=features,
        )
        over = np.asarray(encoded["n_tokens"]) > budget
        summary[split] = {
            "reviews": len(prepared),
            "mean_tokens": round(float(np.mean(encoded["n_tokens"])), 2),
            "share_over_max_length": round(float(over.mean()), 6),
        }
        log.info("%s: %s", split, summary[split])

    with atomic_path(TOKENIZED_DIR) as out_dir:
        (out_dir / TOKENIZED_FRAME_DIR.name).mkdir(parents=True)
        for split, frame in frames.items():
            frame.to_parquet(out_dir / TOKENIZED_FRAME_DIR.name / f"{split}.parquet", index=False)
        datasets.DatasetDict(hf_splits).save_to_disk(str(out_dir / TOKENIZED_HF_DIR.name))
        # How the ids were cut, so that training can store it beside the model and
        # prediction can cut new reviews the same way.
        (out_dir / TOKENIZE_CONFIG_FILE.name).write_text(
            json.dumps({"model_name": model.name, **config.model_dump()}, indent=2) + "\n",
            encoding="utf-8",
        )
    write_json(METRICS_FILE, summary)
    log.info("wrote %s", TOKENIZED_DIR)


if __name__ == "__main__":
    run_stage(main)
