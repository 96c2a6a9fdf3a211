"""Scoring one unit of work of `score`: its rows cleaned as `prepare` cleaned the training
reviews, scored by a model loaded once per worker, and written back with the input's other
columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from imdb_sentiment.classical.features import pipeline_positive_proba
from imdb_sentiment.classical.store import MODEL_FILE, load_classical_model
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.onnx_backend import onnx_scorer
from imdb_sentiment.inference.scorer import check_model_dir
from imdb_sentiment.inference.torch_backend import pick_device, predict_logits
from imdb_sentiment.scoring.plan import (
    TEXT_COLUMN,
    id_columns,
    output_name,
)
from imdb_sentiment.text.cleaning import CleaningParams, clean_text
from imdb_sentiment.text.cutting import CutParams, read_cut_config
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_classifier, load_tokenizer

Proba = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ScoreSettings:
    """What a scoring worker needs (sent to every actor; paths absolute)."""

    kind: str
    backend: str
    model_dir: str
    tokenizer: str | None
    batch_size: int
    device: str
    prepare: CleaningParams


def load_scorer(settings: ScoreSettings) -> Proba:
    """Load the model once; return a function from cleaned reviews to P(positive), which
    computes what `predict` computes (same tokenizer, cut, model and probabilities)."""
    model_dir = Path(settings.model_dir)
    if settings.backend == "onnx-int8":
        # One thread a session: the pool runs one actor per CPU.
        onnx_proba = onnx_scorer(model_dir, threads=1)
        return lambda texts: onnx_proba(texts, settings.batch_size)
    if settings.kind == "distilbert":
        check_model_dir(model_dir, "config.json")
        cut = read_cut_config(model_dir)
        tokenizer = load_tokenizer(str(model_dir), param=None)
        model = load_classifier(str(model_dir), param=None).eval()
        label2id = {name.upper(): idx for idx, name in model.config.id2label.items()}
        if label2id.get("POSITIVE") != 1:
            raise StageError(f"{model_dir}: config.json's id2label is not NEGATIVE/POSITIVE")
        device = pick_device(settings.device)

        def transformer(texts: list[str]) -> np.ndarray:
            ids = tokenize_texts(texts, tokenizer, cut)["input_ids"]
            logits = predict_logits(
                model,
                ids,
                pad_token_id=tokenizer.pad_token_id,
                batch_size=settings.batch_size,
                device=device,
            )
            return positive_proba(logits)

        return transformer

    check_model_dir(model_dir, MODEL_FILE)
    pipeline = load_classical_model(model_dir)
    # One core per actor, and the forest then adds its trees up in one order: the same
    # scores on every run, which a resumed run needs to write the same files.
    pipeline.set_params(**{key: 1 for key in pipeline.get_params() if key.endswith("n_jobs")})
    tokenizer = load_tokenizer(settings.tokenizer)

    def classical(texts: list[str]) -> np.ndarray:
        # Whole-review tokens beside the text, as `tokenize` wrote them for training.
        tokens = tokenize_texts(texts, tokenizer, CutParams())["tokens"]
        frame = pd.DataFrame({"text": texts, "tokens": tokens})
        return np.asarray(pipeline_positive_proba(pipeline, frame), dtype=np.float64)

    return classical


def score_table(table: pa.Table, settings: ScoreSettings, proba: Proba) -> pa.Table:
    """The input rows' kept columns plus `label` and `score`; both null where the text is
    null or empty after cleaning."""
    prepare = settings.prepare
    cleaned = [
        ""
        if text is None
        else clean_text(
            text, clean_html=prepare.clean_html, normalize_whitespace=prepare.normalize_whitespace
        )
        for text in table.column(TEXT_COLUMN).to_pylist()
    ]
    good = [i for i, text in enumerate(cleaned) if text.strip()]
    scores = np.full(len(cleaned), np.nan)
    if good:
        scores[good] = proba([cleaned[i] for i in good])
    bad = np.ones(len(cleaned), dtype=bool)
    bad[good] = False
    kept = table.select(id_columns(table.schema))
    kept = kept.rename_columns([output_name(name) for name in kept.column_names])
    labels = pa.array((scores >= 0.5).astype(np.int64), mask=bad)
    return kept.append_column("label", labels).append_column("score", pa.array(scores, mask=bad))
