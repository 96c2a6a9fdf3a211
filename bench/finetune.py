"""Fine-tune real pretrained weights on real reviews on this CPU with the project's stages.

Runs `prepare`, `tokenize` and `train_distilbert`'s own code (`fine_tune`, `build_trainer`)
in a temporary project folder whose params point at ../shared/data/imdb and at the
pretrained stand-in ../shared/models/all-MiniLM-L6-v2 (a 6-layer BERT with DistilBERT's
vocabulary): 2,000 training reviews drawn with the seed, max_length 256, head_tail
truncation, 1 epoch; then scores 2,000 test reviews (also drawn with the seed) with the
saved model, the way the stage evaluates (length-sorted batches, argmax on the device).

The learning rate, warmup and batch size are tuned for this small model and this short
run (1 epoch, ~125 optimizer steps); the Hugging Face guide's settings (2e-5, batch 16,
no warmup, head-only truncation) give 0.827 here.

Usage: python bench/finetune.py [--train-reviews 2000] [--test-reviews 2000] [--lr 1e-4]
Prints a JSON object on its last line: accuracy, train_reviews_per_s and the settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from bench.project import IMDB_DIR, OFFLINE_ENV, STAND_IN_MODEL, require, temp_project
from imdb_sentiment.core.logs import setup_logging
from imdb_sentiment.core.params import load_params, load_section, load_shared
from imdb_sentiment.core.paths import TOKENIZED_HF_DIR
from imdb_sentiment.stages import prepare, tokenize
from imdb_sentiment.transformer.arguments import TrainParams, build_training_arguments
from imdb_sentiment.transformer.fine_tune import MODEL_DIR, fine_tune
from imdb_sentiment.transformer.trainer import build_trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=IMDB_DIR)
    parser.add_argument("--model", type=Path, default=STAND_IN_MODEL)
    parser.add_argument("--train-reviews", type=int, default=2000)
    parser.add_argument("--test-reviews", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--head-tokens", type=int, default=64)
    parser.add_argument("--truncation", default="head_tail")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--epochs", type=float, default=1.0)
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace) -> dict[str, object]:
    """The params (dotted keys) of the throwaway project the fine-tuning runs in."""
    return {
        "data.source": str(args.data.resolve()),
        "model.name": str(args.model.resolve()),
        "prepare.max_train_samples": args.train_reviews,
        # Validation is not used (one epoch, nothing to choose): keep it small.
        "prepare.max_validation_samples": 100,
        "prepare.max_test_samples": args.test_reviews,
        "tokenize.max_length": args.max_length,
        "tokenize.truncation": args.truncation,
        "tokenize.head_tokens": args.head_tokens,
        "train_distilbert.learning_rate": args.lr,
        "train_distilbert.per_device_train_batch_size": args.batch_size,
        "train_distilbert.per_device_eval_batch_size": 64,
        "train_distilbert.num_train_epochs": args.epochs,
        "train_distilbert.warmup_ratio": args.warmup_ratio,
        "train_distilbert.eval_strategy": "no",
        "train_distilbert.save_strategy": "no",
        "train_distilbert.load_best_model_at_end": False,
        "train_distilbert.logging_steps": 25,
    }


def main() -> None:
    args = parse_args()
    require(args.data, args.model)
    setup_logging()
    logging.getLogger("transformers").setLevel(logging.WARNING)
    os.environ.update(OFFLINE_ENV)

    with temp_project("bench-finetune-", settings_for(args)) as workdir:
        prepare.main()
        tokenize.main()
        params = load_params()
        config = load_section(params, "train_distilbert", TrainParams)
        seed = load_shared(params).seed
        trained = fine_tune(config, seed, str(args.model.resolve()))

        import datasets
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        test = datasets.load_from_disk(str(TOKENIZED_HF_DIR))["test"]
        test = test.select_columns(["input_ids", "label", "length"])
        model = AutoModelForSequenceClassification.from_pretrained(MODEL_DIR)
        tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
        eval_args = build_training_arguments(config, seed, output_dir=str(workdir / "eval"))
        # predict() scores as evaluate() does and also returns the predictions, whose digest
        # (with the weights') shows whether two runs' models predict the same labels.
        predicted = build_trainer(
            eval_args, model, tokenizer, eval_group_by_length=config.eval_group_by_length
        ).predict(test, metric_key_prefix="eval")
        scored = predicted.metrics
        # P(positive) per review (train_distilbert.reduce_logits), or the logits.
        predictions = np.asarray(predicted.predictions)
        labels = predictions.argmax(-1) if predictions.ndim == 2 else predictions >= 0.5
        digests = {
            "predictions_sha256": hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest(),
            "model_sha256": hashlib.sha256(
                (MODEL_DIR / "model.safetensors").read_bytes()
            ).hexdigest(),
        }

    train_seconds = trained["train_runtime"]
    figures = {
        "accuracy": round(scored["eval_accuracy"], 4),
        "test_loss": round(scored["eval_loss"], 4),
        "test_reviews": len(test),
        "train_reviews": args.train_reviews,
        "train_reviews_per_s": round(args.train_reviews * args.epochs / train_seconds, 2),
        "train_seconds": round(train_seconds, 1),
        "test_reviews_per_s": round(scored["eval_samples_per_second"], 2),
        **digests,
        "settings": {
            "model": args.model.name,
            "max_length": args.max_length,
            "truncation": args.truncation,
            "head_tokens": args.head_tokens,
            "learning_rate": args.lr,
            "batch_size": args.batch_size,
            "warmup_ratio": args.warmup_ratio,
            "epochs": args.epochs,
            "scheduler": config.lr_scheduler_type,
            "weight_decay": config.weight_decay,
            "group_by_length": config.group_by_length,
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
