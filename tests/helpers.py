"""What the tests share: synthetic reviews, a tiny DistilBERT, and a temporary DVC project.

Nothing here reads a dataset or the network: the reviews are generated, the tokenizer is
trained on them in the test session and the model is a randomly initialised DistilBERT
with two tiny layers, so the suite runs on a fresh machine in minutes.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ruamel.yaml import YAML

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What a clone of the project holds that the pipeline needs (generated outputs excluded).
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", "pyproject.toml")
PROJECT_DIRS = ("src", ".dvc", "data/raw")

POSITIVE_WORDS = [
    "great",
    "wonderful",
    "superb",
    "brilliant",
    "moving",
    "delightful",
    "excellent",
    "loved",
]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "dull", "waste", "poor", "worst", "hated"]
NEUTRAL_WORDS = [
    "the",
    "movie",
    "film",
    "plot",
    "actor",
    "story",
    "scene",
    "director",
    "character",
    "script",
    "music",
    "and",
    "was",
    "of",
    "a",
    "it",
    "this",
    "with",
    "ending",
    "camera",
    "cast",
    "its",
    "time",
]

# Settings that make every stage finish in seconds on the synthetic data. Each stage's
# section of params.yaml gets its tiny overrides here.
TINY_PARAMS: dict[str, Any] = {
    "prepare.validation_size": 0.25,
    "tokenize.max_length": 64,
    "tokenize.head_tokens": 16,
    "tokenize.batch_size": 16,
    # train_distilbert: the tiny model, trained from scratch, needs a high learning rate
    # and 100-150 steps before its loss leaves 0.69 (on 150 reviews: ~0.82 accuracy).
    "train_distilbert.learning_rate": 0.002,
    "train_distilbert.per_device_train_batch_size": 8,
    "train_distilbert.per_device_eval_batch_size": 16,
    "train_distilbert.num_train_epochs": 10,
    "train_distilbert.warmup_ratio": 0.0,
    "train_distilbert.logging_steps": 4,
    # train_rf / train_linear: a few hundred reviews of ~40 distinct words.
    "train_rf.min_df": 2,
    "train_rf.select_k": 200,
    "train_rf.n_estimators": 40,
    "train_rf.n_jobs": 2,
    "train_rf.verbose": 0,
    "train_linear.min_df": 2,
    "train_linear.char_ngrams": [2, 4],
    "train_linear.n_jobs": 1,
    # evaluate: the synthetic reviews are 15 to 70 tokens long.
    "evaluate.length_buckets": [30, 45, 60],
    "evaluate.n_errors": 3,
    "evaluate.batch_size": 16,
}

# Every subprocess stays offline: the tests must pass on a machine with no network.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
}
# In this process too, and before anything imports huggingface_hub, which reads
# HF_HUB_OFFLINE once at import: later, a hub id would wait on network retries.
os.environ.update(OFFLINE_ENV)


# What counts as a process of the pipeline: these programs, `python -m` of these modules,
# and the project's shell scripts (each runs dvc or make).
PIPELINE_PROGRAMS = {"dvc", "make", "torchrun", "imdb-predict", "imdb-score"}
PIPELINE_MODULES = ("imdb_sentiment.", "dvc", "torch.distributed.run")
# The Python scripts that run dvc (the shell scripts in scripts/ all count).
PIPELINE_SCRIPTS = {"report.py", "pr_comment.py", "plots_png.py"}


def pipeline_process(args: Any) -> str | None:
    """The pipeline program, module or script that a subprocess's `args` start, if any."""
    argv = [str(arg) for arg in (shlex.split(args) if isinstance(args, str) else args)]
    if not argv:
        return None
    if Path(argv[0]).name in PIPELINE_PROGRAMS:
        return Path(argv[0]).name
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        if module.startswith(PIPELINE_MODULES) and module != "dvc_helpers":
            return f"python -m {module}"
    scripts = [
        arg
        for arg in argv[:2]
        if "scripts/" in arg and (arg.endswith(".sh") or Path(arg).name in PIPELINE_SCRIPTS)
    ]
    return scripts[0] if scripts else None


def make_review(label: int, rng: random.Random, n_words: int | None = None) -> str:
    """A review whose sentiment words lean (80/20) towards its label, so a model can learn
    the task but not perfectly; some carry HTML line breaks as the real ones do."""
    words = [rng.choice(NEUTRAL_WORDS) for _ in range(n_words or rng.randint(12, 60))]
    for _ in range(rng.randint(2, 5)):
        agrees = rng.random() < 0.8
        pool = POSITIVE_WORDS if (label == 1) == agrees else NEGATIVE_WORDS
        words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.3:
        text = text.replace(" the ", " the<br /><br />", 1)
    return text


def make_reviews(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` balanced synthetic reviews as a DataFrame with columns `text` and `label`."""
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return pd.DataFrame({"text": [make_review(label, rng) for label in labels], "label": labels})


def write_aclimdb(root: Path, n_train: int = 48, n_test: int = 32, seed: int = 0) -> Path:
    """Write synthetic reviews in the original layout:
    aclImdb/{train,test}/{pos,neg}/ID_RATING.txt."""
    rng = random.Random(seed)
    base = root / "aclImdb"
    for split, n in (("train", n_train), ("test", n_test)):
        frame = make_reviews(n, seed=seed + (split == "test"))
        for index, (text, label) in enumerate(zip(frame["text"], frame["label"], strict=True)):
            folder = base / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            rating = rng.randint(7, 10) if label else rng.randint(1, 4)
            (folder / f"{index}_{rating}.txt").write_text(text, encoding="utf-8")
    return base


def write_parquet_source(root: Path, n_train: int = 48, n_test: int = 32, seed: int = 0) -> Path:
    """Write synthetic reviews as train.parquet / test.parquet (columns text, label)."""
    root.mkdir(parents=True, exist_ok=True)
    make_reviews(n_train, seed).to_parquet(root / "train.parquet", index=False)
    make_reviews(n_test, seed + 1).to_parquet(root / "test.parquet", index=False)
    return root


def build_tiny_model(out_dir: Path, texts: list[str]) -> Path:
    """Train a WordPiece tokenizer on `texts` and save it with a randomly initialised
    two-layer DistilBERT (hidden size 32) in `out_dir`, as `save_pretrained` does."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizer,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=400, min_frequency=1)
    wordpiece.save_model(str(out_dir))
    tokenizer = DistilBertTokenizer(vocab=str(out_dir / "vocab.txt"), model_max_length=512)
    tokenizer.save_pretrained(out_dir)

    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size,
        dim=32,
        hidden_dim=64,
        n_layers=2,
        n_heads=2,
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    import torch

    torch.manual_seed(0)
    DistilBertForSequenceClassification(config).save_pretrained(out_dir)
    return out_dir


def set_params(params_file: Path, updates: Mapping[str, Any]) -> None:
    """Set dotted keys (`tokenize.max_length`) in a params.yaml, keeping its comments; a
    key that does not exist yet is added (to test how a stage refuses it)."""
    yaml = YAML()
    params = yaml.load(params_file.read_text(encoding="utf-8"))
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    with open(params_file, "w", encoding="utf-8") as handle:
        yaml.dump(params, handle)


def subprocess_env() -> dict[str, str]:
    """The environment for `dvc` and stage subprocesses: offline, and with this Python's
    bin folder first on PATH so that the stages' `python` is the one with the packages."""
    env = dict(os.environ, **OFFLINE_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(
    args: list[str],
    cwd: Path,
    check: bool = True,
    timeout: float = 600,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd` (the test environment plus `extra_env`); on an unexpected exit
    status fail with its output shown."""
    env = {**subprocess_env(), **(extra_env or {})}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `dvc` command line in `repo`."""
    return run([sys.executable, "-m", "dvc", *args], cwd=repo, check=check)


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], cwd=repo)


def make_project_repo(repo: Path, source: Path, model_dir: Path, **overrides: Any) -> Path:
    """Copy the project into a new Git repository at `repo`, point it at `source` and
    `model_dir`, apply the tiny params (and `overrides`), and commit."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(PROJECT_ROOT / name, repo / name)
    for name in PROJECT_DIRS:
        shutil.copytree(
            PROJECT_ROOT / name,
            repo / name,
            ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache", "config.local"),
        )
    set_params(
        repo / "params.yaml",
        {"data.source": str(source), "model.name": str(model_dir), **TINY_PARAMS, **overrides},
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@example.com")
    git(repo, "config", "user.name", "tests")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project under test")
    return repo


# Split sizes of the tokenized frame that write_frames makes by default.
SPLIT_SIZES = {"train": 240, "validation": 80, "test": 80}


def read_test_metrics(root: Path) -> dict[str, dict[str, Any]]:
    """evaluate's results in `root`: {model: metrics}, one entry per metrics/test/ file."""
    files = sorted((root / "metrics/test").glob("*.json"))
    return {path.stem: json.loads(path.read_text()) for path in files}


def metrics_from_predictions(root: Path) -> dict[str, dict[str, float]]:
    """Each model's test metrics recomputed with scikit-learn from nothing but its
    predictions/test/<model>.parquet: the label is P(positive) >= 0.5; the log loss clips
    P to [1e-15, 1 - 1e-15], as the metrics files document (scikit-learn's own clip is
    tighter, which matters for a forest's P of exactly 0 or 1)."""
    from sklearn import metrics

    recomputed = {}
    for path in sorted((root / "predictions/test").glob("*.parquet")):
        frame = pd.read_parquet(path)
        labels, proba = frame["label"].to_numpy(), frame["p_positive"].to_numpy()
        predicted = (proba >= 0.5).astype(labels.dtype)
        recomputed[path.stem] = {
            "accuracy": metrics.accuracy_score(labels, predicted),
            "precision": metrics.precision_score(labels, predicted, zero_division=0),
            "recall": metrics.recall_score(labels, predicted, zero_division=0),
            "f1": metrics.f1_score(labels, predicted, zero_division=0),
            "roc_auc": metrics.roc_auc_score(labels, proba),
            "log_loss": metrics.log_loss(labels, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]),
        }
    return recomputed


def assert_test_metrics_match_predictions(root: Path) -> None:
    """metrics/test/<model>.json holds, for every model, the metrics of its own predictions
    (the JSON keeps every digit of a float, so they agree to rounding error)."""
    scores, recomputed = read_test_metrics(root), metrics_from_predictions(root)
    assert set(recomputed) == set(scores) == {"rf", "linear", "distilbert", "distilbert_int8"}
    for model, expected in recomputed.items():
        for key, value in expected.items():
            assert scores[model][key] == pytest.approx(value, rel=1e-12, abs=1e-15), (model, key)


def tokens_of(text: str) -> str:
    """Stand-in for the WordPiece tokens: lowercased words and punctuation."""
    return " ".join(re.findall(r"\w+|[^\w\s]", text.lower()))


def write_frames(root: Path, frames: dict[str, pd.DataFrame] | None = None) -> None:
    """Write data/tokenized/frame/{split}.parquet as `tokenize` does."""
    frame_dir = root / "data" / "tokenized" / "frame"
    frame_dir.mkdir(parents=True, exist_ok=True)
    if frames is None:
        frames = {
            split: make_reviews(n, seed=index)
            for index, (split, n) in enumerate(SPLIT_SIZES.items())
        }
    for split, frame in frames.items():
        frame = frame.copy()
        if "review_id" not in frame:
            frame.insert(0, "review_id", np.arange(len(frame), dtype=np.int64))
        frame["tokens"] = [tokens_of(text) for text in frame["text"]]
        frame["n_tokens"] = np.asarray([len(t.split()) for t in frame["tokens"]], np.int32)
        frame.to_parquet(frame_dir / f"{split}.parquet", index=False)
