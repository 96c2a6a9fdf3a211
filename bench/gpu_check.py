"""GPU check: train DistilBERT's architecture and evaluate 25,000 reviews' worth of token
sequences, the reference's way and the project's way, on one GPU.

No weights or reviews can reach the GPU machine, so the model is a randomly initialised
DistilBERT-base (`DistilBertConfig()`, 66M parameters) and the inputs are random token ids
whose lengths follow the real IMDb test split (`bench/imdb_test_token_lengths.json`: the
token count of each of the 24,999 test reviews under DistilBERT's uncased vocabulary), cut
to 512 tokens as `tokenize` does. Only speed is measured here; accuracy is measured by
`dvc repro` on the real data.

- train: `--train-steps` optimizer steps with the project's Trainer
  (`transformer.trainer.build_trainer`, the `train` defaults: batch 32, mixed
  precision `auto`, length-grouped batches, dynamic padding) and with the reference's
  settings (batch 16, fp32, random batches);
- evaluate: the reference's way (`Trainer.predict`, eval batch 16, random order, fp32,
  padding to the longest in each batch) and the project's way
  (`inference.scorer`'s torch backend: length-sorted batches, `evaluate.batch_size`, bf16
  where the GPU has it, the last layer computing only [CLS]).

Prints both throughputs and their ratios, and as its last line one JSON object.
`--tiny` runs a two-layer model on a few hundred sequences: a smoke test for CPUs.

    python bench/gpu_check.py [--train-steps 300] [--reviews 25000] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.eval_speed import reference_predict
from imdb_sentiment.core.labels import ID2LABEL, LABEL2ID
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.inference.test_split import EvaluateParams
from imdb_sentiment.inference.torch_backend import pick_device
from imdb_sentiment.text.cutting import TOKENIZE_CONFIG_NAME, CutParams
from imdb_sentiment.transformer.arguments import TrainParams, build_training_arguments
from imdb_sentiment.transformer.trainer import build_trainer

REPO = Path(__file__).resolve().parents[1]
LENGTHS_FILE = REPO / "bench" / "imdb_test_token_lengths.json"
MAX_LENGTH = 512
# DistilBERT's uncased vocabulary: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.
VOCAB_SIZE, PAD_ID, CLS_ID, SEP_ID, FIRST_WORD_ID = 30522, 0, 101, 102, 1000
SEED = 42


def real_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` review lengths (tokens, special ones included, cut to 512) drawn from the test
    split's distribution; with n = 24,999 exactly the test split's lengths."""
    counts = json.loads(LENGTHS_FILE.read_text())["counts"]
    lengths = np.repeat(
        np.array([int(k) for k in counts]), np.array(list(counts.values()), dtype=np.int64)
    )
    if n != len(lengths):
        lengths = rng.choice(lengths, size=n, replace=True)
    return np.minimum(lengths + 2, MAX_LENGTH)


def random_sequences(lengths: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
    return [
        [CLS_ID, *rng.integers(FIRST_WORD_ID, VOCAB_SIZE, size=length - 2).tolist(), SEP_ID]
        for length in lengths
    ]


def make_tokenizer(folder: Path):
    """A DistilBERT tokenizer with the real special-token ids, for the padding collator
    (the GPU machine has no tokenizer files; only `pad_token_id` and padding are used)."""
    from transformers import DistilBertTokenizer

    vocab = [f"[unused{i}]" for i in range(VOCAB_SIZE)]
    for token_id, token in ((PAD_ID, "[PAD]"), (100, "[UNK]"), (CLS_ID, "[CLS]")):
        vocab[token_id] = token
    vocab[SEP_ID], vocab[103] = "[SEP]", "[MASK]"
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return DistilBertTokenizer(vocab=str(folder / "vocab.txt"), model_max_length=MAX_LENGTH)


def make_model(tiny: bool):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, set_seed

    set_seed(SEED)
    size = {"n_layers": 2, "dim": 64, "hidden_dim": 128, "n_heads": 2} if tiny else {}
    config = DistilBertConfig(
        vocab_size=VOCAB_SIZE, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID, **size
    )
    return DistilBertForSequenceClassification(config)


def train_throughput(
    way: str, sequences: list[list[int]], labels: np.ndarray, steps: int, tokenizer, tiny: bool
) -> float:
    """Training samples per second over `steps` optimizer steps."""
    import datasets

    if way == "project":
        config = TrainParams()
    else:  # the reference: batch 16, fp32, random batches
        config = TrainParams(
            per_device_train_batch_size=16, mixed_precision="no", group_by_length=False
        )
    dataset = datasets.Dataset.from_dict(
        {
            "input_ids": sequences,
            "label": labels.tolist(),
            "length": [len(ids) for ids in sequences],
        }
    )
    with tempfile.TemporaryDirectory() as out_dir:
        args = build_training_arguments(
            config,
            SEED,
            output_dir=out_dir,
            max_steps=steps,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            logging_steps=max(1, steps // 5),
            disable_tqdm=True,
        )
        trainer = build_trainer(
            args,
            make_model(tiny),
            tokenizer,
            group_by_length=config.group_by_length,
            train_dataset=dataset,
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return steps * config.per_device_train_batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--reviews", type=int, default=25_000)
    parser.add_argument("--batch-size", type=int, default=EvaluateParams().batch_size)
    parser.add_argument("--tiny", action="store_true", help="a two-layer model: CPU smoke test")
    args = parser.parse_args()

    import torch

    device = pick_device("auto")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rng = np.random.default_rng(SEED)
    lengths = real_lengths(args.reviews, rng)
    sequences = random_sequences(lengths, rng)
    labels = rng.integers(0, 2, size=len(sequences))
    print(
        f"{device_name}: {len(sequences)} sequences, {lengths.mean():.0f} tokens on average, "
        f"{(lengths == MAX_LENGTH).mean():.1%} cut at {MAX_LENGTH}",
        flush=True,
    )

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    tokenizer = make_tokenizer(folder)
    train = {
        way: train_throughput(way, sequences, labels, args.train_steps, tokenizer, args.tiny)
        for way in ("reference", "project")
    }
    print(
        f"train: reference {train['reference']:.1f} samples/s, "
        f"project {train['project']:.1f} samples/s",
        flush=True,
    )

    model = make_model(args.tiny).eval()
    # The project's way loads the model from a folder, as the pipeline saves it.
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    cut = CutParams(max_length=MAX_LENGTH).model_dump_json()
    (folder / "model" / TOKENIZE_CONFIG_NAME).write_text(cut, encoding="utf-8")
    scorer = load_scorer("distilbert", "torch", folder / "model", batch_size=args.batch_size)
    # Warm both paths up so that neither pays for CUDA start-up and kernel selection.
    scorer.logits(sequences[:64], desc=None)
    reference_predict(model, tokenizer, sequences[:64], labels[:64].tolist())

    start = time.perf_counter()
    reference_logits = reference_predict(model, tokenizer, sequences, labels.tolist())
    reference_rate = len(sequences) / (time.perf_counter() - start)
    start = time.perf_counter()
    project_logits = scorer.logits(sequences, desc=None)
    project_rate = len(sequences) / (time.perf_counter() - start)
    shutil.rmtree(folder, ignore_errors=True)
    agreement = float((reference_logits.argmax(1) == project_logits.argmax(1)).mean())
    print(
        f"evaluate: reference {reference_rate:.1f} reviews/s (fp32, batch 16, random order), "
        f"project {project_rate:.1f} reviews/s (batch {args.batch_size}); "
        f"{agreement:.2%} same labels"
    )
    print(
        json.dumps(
            {
                "device": device_name,
                "reviews": len(sequences),
                "train_reference_samples_per_s": round(train["reference"], 1),
                "train_project_samples_per_s": round(train["project"], 1),
                "train_ratio": round(train["project"] / train["reference"], 3),
                "eval_reference_reviews_per_s": round(reference_rate, 1),
                "eval_project_reviews_per_s": round(project_rate, 1),
                "eval_ratio": round(project_rate / reference_rate, 3),
                "eval_same_label_share": round(agreement, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
