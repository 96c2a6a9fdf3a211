"""Scoring one unit of work of `score`: its rows cleaned as `prepare` cleaned the training
reviews, scored by a model loaded once per worker, and written back with the input's other
columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.scoring.plan import (
    TEXT_COLUMN,
    id_columns,
    output_name,
)
from imdb_sentiment.text.cleaning import CleaningParams, clean_text

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
    # A longer review (in characters, before cleaning) is not scored (predict.max_review_chars).
    max_review_chars: int


def unit_scorer(settings: ScoreSettings) -> Proba:
    """Load the model once; return a function from cleaned reviews to P(positive), which
    computes what `predict` computes (`inference.scorer`: same cut, model and
    probabilities). One ONNX Runtime thread, and one core for a classical pipeline: the pool
    runs an actor per CPU, and a forest on one core adds its trees up in one order, the same
    scores on every run, which a resumed run needs to write the same files."""
    scorer = load_scorer(
        settings.kind,
        settings.backend,
        Path(settings.model_dir),
        batch_size=settings.batch_size,
        device=settings.device,
        tokenizer=settings.tokenizer,
        threads=1,
        one_core=True,
    )
    return scorer.proba


def too_long(table: pa.Table, max_chars: int) -> np.ndarray:
    """Which rows' text is longer than `max_chars` characters."""
    lengths = pc.utf8_length(table.column(TEXT_COLUMN)).to_numpy(zero_copy_only=False)
    return np.nan_to_num(lengths.astype(np.float64), nan=0) > max_chars


def score_table(table: pa.Table, settings: ScoreSettings, proba: Proba) -> pa.Table:
    """The input rows' kept columns plus `label` and `score`; both null where the text is
    null, longer than `settings.max_review_chars`, or empty after cleaning."""
    prepare = settings.prepare
    long_rows = too_long(table, settings.max_review_chars)
    cleaned = [
        ""
        if text is None or skip
        else clean_text(
            text, clean_html=prepare.clean_html, normalize_whitespace=prepare.normalize_whitespace
        )
        for text, skip in zip(table.column(TEXT_COLUMN).to_pylist(), long_rows, strict=True)
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
