"""Tokenizing reviews: the whole review's WordPiece tokens (for the classical models, which
have no length limit) and its ids cut and framed by `text.cutting` (for the transformer).

`tokenize` runs :func:`tokenize_splits` over the prepared splits with `Dataset.map`;
`predict` and `score` run :func:`tokenize_texts` over new reviews. Both encode a batch with
:func:`encode_batch`, so all three see a review the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from imdb_sentiment.core.labels import ID2LABEL
from imdb_sentiment.text.cutting import CutParams, IdCutter


class TokenizeParams(CutParams):
    """The `tokenize` section: how reviews are cut, and how the work is batched."""

    # Reviews per tokenizer call.
    batch_size: int = Field(1000, ge=1)
    # Processes that tokenize in parallel (Dataset.map's num_proc); null: this one.
    num_proc: int | None = Field(None, ge=1, le=256)


def encode_batch(texts: Sequence[str], tokenizer: Any, cutter: IdCutter) -> dict[str, list]:
    """`tokens` (the whole review's tokens joined by spaces), `n_tokens` (their count),
    `input_ids` (cut and framed for the transformer) and `length` (of the cut ids)."""
    encoded = tokenizer(
        list(texts),
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    ids = encoded["input_ids"]
    input_ids = [cutter(review) for review in ids]
    return {
        "tokens": [" ".join(encoded.tokens(index)) for index in range(len(ids))],
        "n_tokens": [len(review) for review in ids],
        "input_ids": input_ids,
        "length": [len(review) for review in input_ids],
    }


def tokenize_texts(
    texts: Sequence[str],
    tokenizer: Any,
    cut: CutParams,
    batch_size: int = 1000,
    desc: str = "tokens",
) -> dict[str, list]:
    """:func:`encode_batch` of `texts`, a batch at a time (new reviews, in this process)."""
    from tqdm.auto import tqdm

    cutter = IdCutter(tokenizer, cut)
    columns: dict[str, list] = {"tokens": [], "n_tokens": [], "input_ids": [], "length": []}
    with tqdm(total=len(texts), desc=desc, unit="review", mininterval=2) as progress:
        for start in range(0, len(texts), batch_size):
            batch = encode_batch(texts[start : start + batch_size], tokenizer, cutter)
            for name, values in batch.items():
                columns[name].extend(values)
            progress.update(len(batch["tokens"]))
    return columns


@contextmanager
def datasets_progress_off() -> Iterator[None]:
    """The datasets library's own progress bars off (casting, saving: internal steps of a
    second, whose bars would outnumber the stage's own)."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


@dataclass
class TokenizedSplits:
    """What `tokenize` writes: a frame per split for the classical models, the transformer's
    `DatasetDict`, and the summary figures."""

    frames: dict[str, pd.DataFrame]
    datasets: Any
    summary: dict[str, dict[str, float]]


def transformer_features() -> Any:
    """The columns of the transformer's splits: prepare's key, cut ids, label, cut length,
    whole length."""
    import datasets

    return datasets.Features(
        {
            "review_id": datasets.Value("int64"),
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "label": datasets.ClassLabel(names=[ID2LABEL[0], ID2LABEL[1]]),
            "length": datasets.Value("int32"),
            "n_tokens": datasets.Value("int32"),
        }
    )


def tokenize_splits(
    prepared: dict[str, pd.DataFrame], tokenizer: Any, config: TokenizeParams
) -> TokenizedSplits:
    """Tokenize each prepared split (`review_id`, `text`, `label`) with `Dataset.map`, batched, in
    `config.num_proc` processes, each with a progress bar named for its split."""
    import datasets

    cutter = IdCutter(tokenizer, config)
    features = transformer_features()
    frames, splits, summary = {}, {}, {}
    for split, frame in prepared.items():
        columns = ["review_id", "text", "label"]
        mapped = datasets.Dataset.from_pandas(frame[columns], preserve_index=False).map(
            lambda batch: encode_batch(batch["text"], tokenizer, cutter),
            batched=True,
            batch_size=config.batch_size,
            num_proc=config.num_proc if config.num_proc and config.num_proc > 1 else None,
            desc=f"tokenize {split}",
        )
        n_tokens = np.asarray(mapped["n_tokens"], dtype=np.int32)
        frames[split] = pd.DataFrame(
            {
                "review_id": frame["review_id"],
                "text": frame["text"],
                "label": frame["label"],
                "tokens": mapped["tokens"],
                "n_tokens": n_tokens,
            }
        )
        with datasets_progress_off():
            splits[split] = mapped.select_columns(list(features)).cast(features)
        summary[split] = {
            "reviews": len(frame),
            "mean_tokens": round(float(n_tokens.mean()), 2),
            "share_over_max_length": round(float((n_tokens > cutter.budget).mean()), 6),
        }
    return TokenizedSplits(frames, datasets.DatasetDict(splits), summary)
