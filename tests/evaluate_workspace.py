"""A project folder with tokenized synthetic reviews, three tiny trained models and the
ONNX export of the transformer, built in-process (no dvc): what `evaluate` and `predict`
read. Used by test_evaluate.py and test_predict.py.

The classical models are small scikit-learn pipelines over the `text` and `tokens`
columns saved as `model.skops` with `classical.store.save_classical_model`; DistilBERT is
conftest's tiny model, briefly fine-tuned here so that its scores are not all alike.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import OFFLINE_ENV, PROJECT_ROOT, TINY_PARAMS, set_params, write_parquet_source


@contextmanager
def chdir(path: Path) -> Iterator[Path]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)


def tiny_classical_pipeline(kind: str):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    features = ColumnTransformer(
        [
            ("words", CountVectorizer(binary=True), "text"),
            ("wordpieces", CountVectorizer(binary=True, token_pattern=r"\S+"), "tokens"),
        ]
    )
    classifier = (
        RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=1)
        if kind == "rf"
        else LogisticRegression(max_iter=200)
    )
    return Pipeline([("features", features), ("classifier", classifier)])


def fine_tune(
    model_dir: Path, out_dir: Path, input_ids: list[list[int]], labels: list[int]
) -> None:
    """A few full-batch Adam steps on the training split, so the tiny model's scores spread."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from imdb_sentiment.inference.batching import pad_batch
    from imdb_sentiment.transformer.loading import load_tokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    ids, mask = pad_batch(load_tokenizer(str(model_dir), param=None), input_ids)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    target = torch.tensor(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    # One thread: on a busy two-core machine, two threads of this tiny model mostly wait
    # for each other (ten times slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(30):
            optimizer.zero_grad()
            loss = model(input_ids=ids_t, attention_mask=mask_t, labels=target).loss
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out_dir)


def build_workspace(root: Path, tiny_model_dir: Path) -> Path:
    """Prepare + tokenize synthetic reviews in `root` and save three tiny models there."""
    import datasets
    import pandas as pd

    from imdb_sentiment.classical.store import save_classical_model
    from imdb_sentiment.stages import export_onnx, prepare, tokenize

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    source = write_parquet_source(root / "source", n_train=160, n_test=64)
    set_params(
        root / "params.yaml",
        {"data.source": str(source), "model.name": str(tiny_model_dir), **TINY_PARAMS},
    )
    saved_env = {key: os.environ.get(key) for key in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    try:
        with chdir(root):
            prepare.main()
            tokenize.main()
            train = pd.read_parquet("data/tokenized/frame/train.parquet")
            for kind in ("rf", "linear"):
                pipeline = tiny_classical_pipeline(kind).fit(
                    train[["text", "tokens"]], train["label"]
                )
                save_classical_model(pipeline, Path("models") / kind)
            hf_train = datasets.load_from_disk("data/tokenized/hf")["train"]
            distilbert = Path("models/distilbert")
            shutil.copytree(tiny_model_dir, distilbert)
            fine_tune(tiny_model_dir, distilbert, hf_train["input_ids"], hf_train["label"])
            shutil.copy2("data/tokenized/tokenize_config.json", distilbert)
            export_onnx.main()
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return root
