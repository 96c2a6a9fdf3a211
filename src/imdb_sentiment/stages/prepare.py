"""prepare: load the IMDb reviews, clean them and write train / validation / test splits.

Reads `data.source` (a Hugging Face dataset id, a folder of Parquet files, or an aclImdb/
folder), cleans the text, carves a stratified, seeded validation split out of train (the
test split is never used to choose anything) and writes `data/prepared/{split}.parquet`
with columns `review_id` (the review's position in the source's split, a key that every
later stage keeps), `text` and `label`, plus the row counts to `summaries/prepare.json`.
"""

from __future__ import annotations

import logging

from imdb_sentiment.core.atomic import atomic_outputs, json_text
from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import DataParams, load_params, load_section, load_shared
from imdb_sentiment.core.paths import PREPARED_DIR, SUMMARIES_DIR
from imdb_sentiment.data.sources import load_source
from imdb_sentiment.data.splits import PrepareParams, prepare_splits

log = logging.getLogger("imdb_sentiment.prepare")

SUMMARY_FILE = SUMMARIES_DIR / "prepare.json"


def main() -> None:
    params = load_params()
    config = load_section(params, "prepare", PrepareParams)
    data = load_section(params, "data", DataParams)
    seed = load_shared(params).seed

    log.info("loading %s", data.source)
    splits, summary = prepare_splits(load_source(data.source), config, seed)
    # Neither out is replaced until both are written.
    with atomic_outputs(PREPARED_DIR, SUMMARY_FILE) as (out_dir, summary_file):
        out_dir.mkdir()
        for split, frame in splits.items():
            frame.to_parquet(out_dir / f"{split}.parquet", index=False)
        summary_file.write_text(json_text(summary), encoding="utf-8")
    log.info("wrote %s to %s", summary["rows"], PREPARED_DIR)


if __name__ == "__main__":
    run_stage(main)
