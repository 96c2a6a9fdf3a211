"""Evaluation speed of the transformer: the reference's way against the project's way.

The same model scores the same real test reviews from `../shared/data/imdb` (cleaned as
`prepare` does, tokenized and cut by the `tokenize` stage with the tokenizer of
`../shared/models/all-MiniLM-L6-v2`, which has DistilBERT's vocabulary) twice in one run.
The model is the pretrained stand-in (the MiniLM encoder from ../shared with a seeded,
randomly initialised two-label head): its predictions vary from review to review, so
"same predictions" means something, and it runs a 1,000-review benchmark in minutes on
two cores. `--model distilbert-base` uses a randomly initialised DistilBERT-base
(`DistilBertConfig()` defaults) instead: about four times slower, and its random weights
give every review the same label.

- reference: `Trainer.predict` as the HF text-classification recipe evaluates: eval batch
  16, the reviews in random order, fp32, `DataCollatorWithPadding` (pad to the longest in
  each batch);
- project: the model saved as a model folder and scored the way `evaluate`, `predict` and
  `score` score it (`inference.scorer`, torch backend: length-sorted batches, dynamic
  padding, `torch.inference_mode`, `evaluate.batch_size` reviews a batch, bf16 autocast on
  a CPU or GPU that has bf16 units, the last layer computing only the [CLS] position the
  head reads).

Prints both reviews/s and their ratio, whether the predicted labels (argmax) are the same,
and as its last line one JSON object: reference_reviews_per_s, project_reviews_per_s,
ratio, same_predictions.

    .venv/bin/python bench/eval_speed.py [--reviews 1000] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.project import IMDB_DIR, STAND_IN_MODEL
from imdb_sentiment.core.labels import ID2LABEL, LABEL2ID
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.inference.test_split import EvaluateParams
from imdb_sentiment.inference.torch_backend import pick_device
from imdb_sentiment.text.cleaning import clean_text
from imdb_sentiment.text.cutting import TOKENIZE_CONFIG_NAME, CutParams
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer

TEST_FILE = IMDB_DIR / "test.parquet"
TOKENIZER_DIR = STAND_IN_MODEL
REFERENCE_EVAL_BATCH = 16
SEED = 42


def load_reviews(n: int, test_file: Path = TEST_FILE) -> pd.DataFrame:
    """`n` test reviews drawn at random (seeded), in that random order, cleaned as prepare does."""
    if not test_file.exists():
        sys.exit(f"error: {test_file} not found: set IMDB_DATA to the IMDb Parquet folder")
    frame = pd.read_parquet(test_file, columns=["text", "label"])
    frame = frame.sample(n=n, random_state=SEED).reset_index(drop=True)
    frame["text"] = [
        clean_text(text, clean_html=True, normalize_whitespace=True) for text in frame["text"]
    ]
    return frame


def reference_predict(
    model, tokenizer, input_ids: list[list[int]], labels: list[int]
) -> np.ndarray:
    """Logits from `Trainer.predict` with the recipe's eval settings."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    dataset = datasets.Dataset.from_dict({"input_ids": input_ids, "label": labels})
    with tempfile.TemporaryDirectory() as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            per_device_eval_batch_size=REFERENCE_EVAL_BATCH,
            report_to="none",
            disable_tqdm=True,
            use_cpu=pick_device("auto").type != "cuda",
        )
        trainer = Trainer(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        return np.asarray(trainer.predict(dataset).predictions, dtype=np.float32)


def load_model(kind: str, vocab_size: int):
    """The model both ways score with, its random parts seeded."""
    from transformers import (
        AutoModelForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        set_seed,
    )

    set_seed(SEED)
    if kind == "minilm":
        return AutoModelForSequenceClassification.from_pretrained(
            TOKENIZER_DIR, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID
        ).eval()
    config = DistilBertConfig(
        vocab_size=vocab_size, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID
    )
    return DistilBertForSequenceClassification(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--model", choices=["minilm", "distilbert-base"], default="minilm")
    parser.add_argument(
        "--batch-size", type=int, default=EvaluateParams().batch_size, help="project's batch"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    reviews = load_reviews(args.reviews)
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    config = CutParams()  # the project's defaults: 512 tokens, head_tail 128
    encoded = tokenize_texts(reviews["text"].tolist(), tokenizer, config)
    input_ids = encoded["input_ids"]
    lengths = np.array([len(ids) for ids in input_ids])
    print(
        f"{len(input_ids)} reviews, {lengths.mean():.0f} tokens on average "
        f"(max {lengths.max()}), torch threads {torch.get_num_threads()}",
        flush=True,
    )

    model = load_model(args.model, tokenizer.vocab_size)
    # The project's way loads the model from a folder, as the pipeline saves it.
    folder = Path(tempfile.mkdtemp(prefix="bench-eval-speed-"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / TOKENIZE_CONFIG_NAME).write_text(config.model_dump_json(), encoding="utf-8")
    scorer = load_scorer("distilbert", "torch", folder, batch_size=args.batch_size)

    # Warm both paths up on a few reviews, so neither pays for first-call set-up.
    scorer.logits(input_ids[:8], desc=None)
    reference_predict(model, tokenizer, input_ids[:8], reviews["label"].tolist()[:8])

    # Wall-clock time is what the figures use; the process's CPU time is printed beside it
    # as a check that is less sensitive to other work on a shared machine.
    start, start_cpu = time.perf_counter(), time.process_time()
    reference_logits = reference_predict(model, tokenizer, input_ids, reviews["label"].tolist())
    reference_s = time.perf_counter() - start
    reference_cpu_s = time.process_time() - start_cpu
    reference_rate = len(input_ids) / reference_s
    print(
        f"reference: {reference_s:.1f} s ({reference_cpu_s:.1f} CPU s), "
        f"{reference_rate:.2f} reviews/s",
        flush=True,
    )

    start, start_cpu = time.perf_counter(), time.process_time()
    project_logits = scorer.logits(input_ids, desc="project")
    shutil.rmtree(folder, ignore_errors=True)
    project_s = time.perf_counter() - start
    project_cpu_s = time.process_time() - start_cpu
    project_rate = len(input_ids) / project_s
    print(
        f"project:   {project_s:.1f} s ({project_cpu_s:.1f} CPU s), "
        f"{project_rate:.2f} reviews/s; CPU-time ratio {reference_cpu_s / project_cpu_s:.2f}",
        flush=True,
    )

    reference_labels = reference_logits.argmax(axis=1)
    project_labels = project_logits.argmax(axis=1)
    same = bool(np.array_equal(reference_labels, project_labels))
    ratio = project_rate / reference_rate
    print(
        f"ratio {ratio:.2f}x; same argmax labels: {same} "
        f"({int((reference_labels != project_labels).sum())} differ; "
        f"{int(project_labels.sum())} of {len(project_labels)} predicted positive; "
        f"max |logit difference| {np.abs(reference_logits - project_logits).max():.2e})"
    )
    print(
        json.dumps(
            {
                "reference_reviews_per_s": round(reference_rate, 3),
                "project_reviews_per_s": round(project_rate, 3),
                "ratio": round(ratio, 3),
                "same_predictions": same,
                # Digests of the project's labels and logits, to compare runs of two versions.
                "project_labels_sha256": hashlib.sha256(
                    project_labels.astype(np.int64).tobytes()
                ).hexdigest(),
                "project_logits_sha256": hashlib.sha256(project_logits.tobytes()).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
