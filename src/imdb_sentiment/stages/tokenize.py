"""tokenize: tokenize every prepared split once with the model's fast tokenizer.

Writes two views of the same tokenization:
- `data/tokenized/frame/{split}.parquet`: a DataFrame per split for the classical models,
  with `review_id` (prepare's key), the cleaned `text`, the `label`, the whole review's
  WordPiece `tokens` joined by spaces (classical models have no length limit, so nothing
  is cut) and `n_tokens`.
- `data/tokenized/hf/`: a `datasets.DatasetDict` (`save_to_disk`) for the Trainer, with
  `review_id`, `input_ids` cut to `tokenize.max_length` by `tokenize.truncation`, `label`
  and `length` (the cut length, for length-grouped batches);
- `data/tokenized/tokenize_config.json`: how the ids were cut, which training copies beside
  the model so that prediction cuts new reviews the same way.
Summary figures (share of reviews over max_length, mean length) go to
`summaries/tokenize.json`.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.params import ModelParams, load_params, load_section
from imdb_sentiment.core.paths import (
    PREPARED_DIR,
    SPLITS,
    SUMMARIES_DIR,
    TOKENIZED_DIR,
    TOKENIZED_FRAME_DIR,
    TOKENIZED_HF_DIR,
)
from imdb_sentiment.text.cutting import TOKENIZE_CONFIG_NAME, CutParams
from imdb_sentiment.text.tokenizing import (
    TokenizeParams,
    datasets_progress_off,
    tokenize_splits,
)
from imdb_sentiment.transformer.loading import load_tokenizer

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
    prepared = {}
    for split in SPLITS:
        path = PREPARED_DIR / f"{split}.parquet"
        if not path.exists():
            raise StageError(f"{path} is missing: run `dvc repro prepare` first")
        prepared[split] = pd.read_parquet(path, columns=["review_id", "text", "label"])
    tokenized = tokenize_splits(prepared, tokenizer, config)
    for split, figures in tokenized.summary.items():
        log.info("%s: %s", split, figures)

    cut = {key: getattr(config, key) for key in CutParams.model_fields}
    # Neither out is replaced until both are written.
    with atomic_outputs(TOKENIZED_DIR, SUMMARY_FILE) as (out_dir, summary_file):
        (out_dir / TOKENIZED_FRAME_DIR.name).mkdir(parents=True)
        for split, frame in tokenized.frames.items():
            frame.to_parquet(out_dir / TOKENIZED_FRAME_DIR.name / f"{split}.parquet", index=False)
        with datasets_progress_off():
            tokenized.datasets.save_to_disk(str(out_dir / TOKENIZED_HF_DIR.name))
        (out_dir / TOKENIZE_CONFIG_NAME).write_text(
            json.dumps({"model_name": model.name, **cut}, indent=2) + "\n", encoding="utf-8"
        )
        summary_file.write_text(json_text(tokenized.summary), encoding="utf-8")
    log.info("wrote %s", TOKENIZED_DIR)


if __name__ == "__main__":
    run_stage(main)
