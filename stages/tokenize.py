"""tokenize: tokenize every prepared split once with the model's fast tokenizer.

Writes two views of the same tokenization:
- `data/tokenized/frame/{split}.parquet`: a DataFrame per split for the classical models,
  with the cleaned `text`, the `label`, the whole review's WordPiece `tokens` joined by
  spaces (classical models have no length limit, so nothing is cut) and `n_tokens`.
- `data/tokenized/hf/`: a `datasets.DatasetDict` (`save_to_disk`) for the Trainer, with
  `input_ids` cut to `tokenize.max_length` by `tokenize.truncation`, `label` and
  `length` (the cut length, for length-grouped batches).
Summary figures (share of reviews over max_length, mean length) go to
`summaries/tokenize.json`.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from stages.atomic import atomic_outputs, json_text
from stages.cutting import TOKENIZE_CONFIG_NAME, IdCutter, TokenizeParams, tokenize_texts
from stages.errors import StageError, run_stage
from stages.hub import load_tokenizer
from stages.params import ModelParams, load_params, load_section
from stages.paths import (
    PREPARED_DIR,
    SPLITS,
    SUMMARIES_DIR,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
)

log = logging.getLogger("imdb_sentiment.tokenize")

SUMMARY_FILE = SUMMARIES_DIR / "tokenize.json"


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
        encoded = tokenize_texts(prepared["text"].tolist(), tokenizer, config, desc=split)
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

    # Neither out is replaced until both are written.
    with atomic_outputs(TOKENIZED_DIR, SUMMARY_FILE) as (out_dir, summary_file):
        (out_dir / TOKENIZED_FRAME_DIR.name).mkdir(parents=True)
        for split, frame in frames.items():
            frame.to_parquet(out_dir / TOKENIZED_FRAME_DIR.name / f"{split}.parquet", index=False)
        datasets.DatasetDict(hf_splits).save_to_disk(str(out_dir / TOKENIZED_HF_DIR.name))
        # How the ids were cut, so that training can store it beside the model and
        # prediction can cut new reviews the same way.
        (out_dir / TOKENIZE_CONFIG_NAME).write_text(
            json.dumps({"model_name": model.name, **config.model_dump()}, indent=2) + "\n",
            encoding="utf-8",
        )
        summary_file.write_text(json_text(summary), encoding="utf-8")
    log.info("wrote %s", TOKENIZED_DIR)


if __name__ == "__main__":
    run_stage(main)
