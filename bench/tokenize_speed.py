"""Time `prepare` + `tokenize` over the full IMDb data in ../shared.

Runs the project's own stages in a temporary project folder, with `data.source` pointing
at ../shared/data/imdb and `model.name` at the pretrained stand-in
../shared/models/all-MiniLM-L6-v2 (DistilBERT's vocabulary). As a baseline in the same
run, it times the Hugging Face recipe's tokenization (`Dataset.map` of
`tokenizer(text, truncation=True)`, batched) over the same prepared reviews, so the speed
is also given as a ratio that machine noise affects less.

Usage: python bench/tokenize.py [--max-length 512] [--truncation head_tail]
Prints a JSON object on its last line: reviews_per_s, seconds, share_over_max_length, ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.project import (
    IMDB_DIR,
    NO_CAPS,
    OFFLINE_ENV,
    STAND_IN_MODEL,
    require,
    temp_project,
)
from imdb_sentiment.core.logs import setup_logging
from imdb_sentiment.core.paths import SPLITS
from imdb_sentiment.stages import prepare, tokenize


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def hf_recipe_seconds(prepared_dir: Path, model: Path, max_length: int) -> float:
    """The HF text-classification recipe's tokenization of the same reviews."""
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    files = {split: str(prepared_dir / f"{split}.parquet") for split in SPLITS}
    dataset = datasets.load_dataset("parquet", data_files=files)

    def preprocess(batch: dict) -> dict:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return timed(lambda: dataset.map(preprocess, batched=True, load_from_cache_file=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=IMDB_DIR)
    parser.add_argument("--model", type=Path, default=STAND_IN_MODEL)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--truncation", default="head_tail")
    args = parser.parse_args()
    require(args.data, args.model)
    setup_logging()
    os.environ.update(OFFLINE_ENV)

    settings = {
        "data.source": str(args.data.resolve()),
        "model.name": str(args.model.resolve()),
        "tokenize.max_length": args.max_length,
        "tokenize.truncation": args.truncation,
        **NO_CAPS,
    }
    with temp_project("bench-tokenize-", settings) as workdir:
        prepare_s = timed(prepare.main)
        tokenize_s = timed(tokenize.main)
        summary = json.loads((workdir / "summaries/tokenize.json").read_text())
        baseline_s = hf_recipe_seconds(workdir / "data/prepared", args.model, args.max_length)

    reviews = sum(split["reviews"] for split in summary.values())
    over = sum(split["share_over_max_length"] * split["reviews"] for split in summary.values())
    seconds = prepare_s + tokenize_s
    result = {
        "reviews": reviews,
        "seconds": round(seconds, 2),
        "prepare_s": round(prepare_s, 2),
        "tokenize_s": round(tokenize_s, 2),
        "reviews_per_s": round(reviews / seconds, 1),
        "tokenize_reviews_per_s": round(reviews / tokenize_s, 1),
        "hf_recipe_tokenize_s": round(baseline_s, 2),
        "tokenize_vs_hf_recipe_ratio": round(baseline_s / tokenize_s, 3),
        "share_over_max_length": round(over / reviews, 4),
        "max_length": args.max_length,
        "truncation": args.truncation,
        "cpu_count": os.cpu_count(),
    }
    print(
        f"prepare + tokenize: {reviews} reviews in {seconds:.1f} s "
        f"({result['reviews_per_s']} reviews/s); {result['share_over_max_length']:.1%} longer "
        f"than {args.max_length} tokens; tokenize alone vs the HF recipe's map: "
        f"{tokenize_s:.1f} s vs {baseline_s:.1f} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
