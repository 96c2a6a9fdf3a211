"""CPU inference: the reference's way against the project's torch fp32, torch bf16 and
ONNX Runtime int8 backends, on one fine-tuned model and the same real test reviews.

The model is the pretrained stand-in (`IMDB_BENCH_MODEL`, a 6-layer BERT with DistilBERT's
vocabulary) fine-tuned as `bench.finetune` does (`--train-reviews`, default 2,000, 256
tokens, head_tail, 1 epoch, `train_distilbert`'s own code), cached in `--cache` and reused
when it is there; its ONNX export (the `export_onnx` stage, fused fp32 + dynamic int8) is cached
beside it. 1,000 test reviews from `IMDB_DATA` (drawn with the seed, cleaned as `prepare`
does, cut as the model's training cut them) are scored five ways in one run:

- reference: `Trainer.predict` as the Hugging Face recipe evaluates (eval batch 16, the
  reviews in random order, fp32, padding per batch);
- torch_fp32: the torch backend of `inference.scorer` in fp32 (length-sorted batches,
  inference mode, the last layer computing only [CLS]), `--batch-size` reviews a batch;
- torch_bf16: the same with bf16 autocast, which the project uses only on a CPU that does
  bf16 in hardware (AMX or AVX512-BF16): on any other CPU this row runs fp32 again, as
  the project would, unless `--force-bf16` (emulated bf16, to see what it would cost);
- onnx_int8: the int8 ONNX graph with ONNX Runtime (`inference.onnx_backend`), the same
  batching, ONNX Runtime's own thread count (one per core), as predict runs it;
- auto: `--backend auto` as predict and score run it, its choice measured afresh (a
  temporary cache): it should run at least 0.95x the faster of torch fp32 and int8.

Last line, one JSON object: per way {reviews_per_s, accuracy} (auto's with the backend it
chose); the CPU's name; bf16_same_labels and int8_same_labels (shares of reviews labelled
as torch fp32 labels them), auto_same_labels_as_chosen; cpu_bf16 (whether this CPU does
bf16 in hardware), bf16_autocast (whether the bf16 row ran in bf16) and the speed ratios,
by wall-clock and by CPU time.

    python -m bench.cpu_inference [--reviews 1000] [--batch-size 64] [--force-bf16]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from bench import finetune
from bench.eval_speed import load_reviews, reference_predict
from bench.project import IMDB_DIR, OFFLINE_ENV, REPO, STAND_IN_MODEL, require, temp_project
from imdb_sentiment.core.atomic import atomic_path, json_text
from imdb_sentiment.inference.auto_backend import CACHE_DIR_ENV, cpu_name
from imdb_sentiment.inference.model_folder import open_transformer_folder
from imdb_sentiment.inference.onnx_backend import INT8_FILE, OnnxScorer
from imdb_sentiment.inference.onnx_export import ExportParams, export
from imdb_sentiment.inference.precision import cpu_supports_bf16
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.inference.test_split import EvaluateParams
from imdb_sentiment.inference.torch_backend import TorchScorer
from imdb_sentiment.text.cutting import read_cut_config
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer

CACHE_DIR = REPO / ".cache" / "bench-finetuned"
WARMUP_REVIEWS = 8


def fine_tuned_model(cache: Path, data: Path, model: Path, train_reviews: int) -> Path:
    """The stand-in fine-tuned as bench.finetune does, from `cache` or trained into it."""
    if (cache / "config.json").exists() and (cache / "tokenize_config.json").exists():
        print(f"fine-tuned model: {cache} (cached)", flush=True)
        return cache
    from imdb_sentiment.core.params import load_params, load_section, load_shared
    from imdb_sentiment.stages import prepare, tokenize
    from imdb_sentiment.transformer.arguments import TrainParams
    from imdb_sentiment.transformer.fine_tune import MODEL_DIR, fine_tune

    print(f"fine-tuning {model.name} into {cache} (once; reused after)", flush=True)
    args = finetune.parse_args(
        ["--data", str(data), "--model", str(model), "--train-reviews", str(train_reviews)]
    )
    cache = cache.resolve()
    with temp_project("bench-cpu-inference-", finetune.settings_for(args)):
        prepare.main()
        tokenize.main()
        params = load_params()
        config = load_section(params, "train_distilbert", TrainParams)
        fine_tune(config, load_shared(params).seed, str(model.resolve()))
        with atomic_path(cache) as tmp:
            shutil.copytree(MODEL_DIR, tmp)
    return cache


def onnx_export(model_dir: Path) -> Path:
    """The model's ONNX folder (fused fp32 + int8) beside it, exported once."""
    out = model_dir.with_name(model_dir.name + "-onnx")
    if not (out / INT8_FILE).exists():
        with atomic_path(out) as tmp:
            record = export(model_dir, tmp, ExportParams())
            (tmp / "export.json").write_text(json_text(record), encoding="utf-8")
    print(f"ONNX export: {out} {(out / 'export.json').read_text(encoding='utf-8')}", flush=True)
    return out


def timed(name: str, score: Callable[[list[list[int]]], np.ndarray], ids: list[list[int]]):
    """Warm `score` up on a few reviews, then time it on all: (logits, reviews/s, CPU s)."""
    score(ids[:WARMUP_REVIEWS])
    start, start_cpu = time.perf_counter(), time.process_time()
    logits = score(ids)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    rate = len(ids) / seconds
    print(f"{name:<11} {seconds:7.1f} s ({cpu_seconds:.1f} CPU s), {rate:.2f} reviews/s")
    return logits, rate, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=IMDB_DIR)
    parser.add_argument("--model", type=Path, default=STAND_IN_MODEL)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="fine-tuned model folder")
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument(
        "--train-reviews", type=int, default=2000, help="fine-tuning reviews, if not cached"
    )
    parser.add_argument("--batch-size", type=int, default=EvaluateParams().batch_size)
    parser.add_argument("--force-bf16", action="store_true", help="bf16 even if emulated")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    logging.basicConfig(level=logging.WARNING)
    if not (args.cache / "config.json").exists():
        require(args.data, args.model)
    require(args.data / "test.parquet")

    import torch
    from transformers import AutoModelForSequenceClassification

    model_dir = fine_tuned_model(args.cache, args.data, args.model, args.train_reviews)
    onnx_dir = onnx_export(model_dir)
    reviews = load_reviews(args.reviews, args.data / "test.parquet")
    labels = reviews["label"].to_numpy()
    tokenizer = load_tokenizer(str(model_dir), param=None)
    cut = read_cut_config(model_dir)
    ids = tokenize_texts(reviews["text"].tolist(), tokenizer, cut)["input_ids"]
    lengths = np.array([len(row) for row in ids])
    threads = torch.get_num_threads()
    cpu_bf16 = cpu_supports_bf16()
    bf16_autocast = cpu_bf16 or args.force_bf16
    print(
        f"{len(ids)} reviews, {lengths.mean():.0f} tokens on average (cut to {cut.max_length}), "
        f"{threads} threads, CPU bf16: {cpu_bf16}, bf16 row in bf16: {bf16_autocast}",
        flush=True,
    )

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    torch_folder = open_transformer_folder(model_dir, "config.json")
    batch = args.batch_size
    fp32 = TorchScorer(torch_folder, batch_size=batch, device="cpu", bf16=False)
    bf16 = TorchScorer(torch_folder, batch_size=batch, device="cpu", bf16=True)
    int8 = OnnxScorer(open_transformer_folder(onnx_dir, INT8_FILE), batch_size=batch)
    # `--backend auto` as predict and score run it, measured afresh for this run.
    os.environ[CACHE_DIR_ENV] = tempfile.mkdtemp(prefix="bench-auto-")
    auto = load_scorer("distilbert", "auto", model_dir, batch_size=batch, onnx_dir=onnx_dir)
    chosen = (
        "onnx_int8" if isinstance(auto, OnnxScorer) else "torch_bf16" if cpu_bf16 else "torch_fp32"
    )
    forced = torch.autocast("cpu", dtype=torch.bfloat16) if args.force_bf16 else nullcontext()

    def forced_bf16(rows: list[list[int]]) -> np.ndarray:
        with forced:
            return bf16.logits(rows, desc=None)

    ways = {
        "reference": lambda rows: reference_predict(
            model, tokenizer, rows, labels[: len(rows)].tolist()
        ),
        "torch_fp32": lambda rows: fp32.logits(rows, desc=None),
        "torch_bf16": forced_bf16,
        "onnx_int8": lambda rows: int8.logits(rows, desc=None),
        "auto": lambda rows: auto.logits(rows, desc=None),
    }
    predicted, figures, cpu_seconds = {}, {}, {}
    for name, score in ways.items():
        logits, rate, cpu_seconds[name] = timed(name, score, ids)
        predicted[name] = logits.argmax(axis=1)
        accuracy = float((predicted[name] == labels).mean())
        figures[name] = {"reviews_per_s": round(rate, 3), "accuracy": round(accuracy, 4)}

    labels_fp32 = predicted["torch_fp32"]
    fastest = max(figures["torch_fp32"]["reviews_per_s"], figures["onnx_int8"]["reviews_per_s"])
    figures["auto"]["backend"] = chosen
    figures |= {
        "cpu": cpu_name(),
        "bf16_same_labels": round(float((predicted["torch_bf16"] == labels_fp32).mean()), 4),
        "int8_same_labels": round(float((predicted["onnx_int8"] == labels_fp32).mean()), 4),
        "auto_same_labels_as_chosen": round(
            float((predicted["auto"] == predicted[chosen]).mean()), 4
        ),
        "cpu_bf16": cpu_bf16,
        "bf16_autocast": bf16_autocast,
        "torch_bf16_vs_reference": round(
            figures["torch_bf16"]["reviews_per_s"] / figures["reference"]["reviews_per_s"], 3
        ),
        "onnx_int8_vs_torch_fp32": round(
            figures["onnx_int8"]["reviews_per_s"] / figures["torch_fp32"]["reviews_per_s"], 3
        ),
        # auto against the faster of torch fp32 and int8, both measured in this run.
        "auto_vs_fastest_of_fp32_and_int8": round(figures["auto"]["reviews_per_s"] / fastest, 3),
        # The same ratios from this process's CPU time, less swayed by other work on a
        # shared machine than wall-clock time.
        "cpu_time_ratios": {
            "torch_bf16_vs_reference": round(
                cpu_seconds["reference"] / cpu_seconds["torch_bf16"], 3
            ),
            "onnx_int8_vs_torch_fp32": round(
                cpu_seconds["torch_fp32"] / cpu_seconds["onnx_int8"], 3
            ),
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
