"""The classical models' P(positive): a saved scikit-learn pipeline reads the cleaned review
and its WordPiece tokens, which come from the tokenizer `tokenize` used (`model.name`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imdb_sentiment.classical.store import (
    MODEL_FILE,
    classical_positive_proba,
    load_classical_model,
)
from imdb_sentiment.inference.model_folder import check_model_dir
from imdb_sentiment.text.cutting import CutParams
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer


class ClassicalScorer:
    """P(positive) from a classical model folder (`models/rf`, `models/linear`).

    `tokenizer` names the tokenizer of the `tokens` column (a hub id or a folder), loaded
    when reviews are first encoded: the test split arrives tokenized. With `one_core`, every
    step runs in this process's one thread, so that a forest adds its trees up in one order
    and gives the same scores on every run (one scoring actor per core does the rest).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        tokenizer: str | None = None,
        tokenizer_param: str = "model.name",
        one_core: bool = False,
    ) -> None:
        check_model_dir(model_dir, MODEL_FILE)
        self.where = str(model_dir / MODEL_FILE)
        self.pipeline = load_classical_model(model_dir)
        if one_core:
            jobs = [key for key in self.pipeline.get_params() if key.endswith("n_jobs")]
            self.pipeline.set_params(**dict.fromkeys(jobs, 1))
        self.tokenizer_name, self.tokenizer_param = tokenizer, tokenizer_param
        self._tokenizer: Any = None

    def encode(self, texts: Sequence[str]) -> pd.DataFrame:
        """The pipeline's input: each cleaned review with its whole-review tokens, joined by
        spaces as `tokenize` writes them for training."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(str(self.tokenizer_name), self.tokenizer_param)
        tokens = tokenize_texts(texts, self._tokenizer, CutParams())["tokens"]
        return pd.DataFrame({"text": list(texts), "tokens": tokens})

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive) of a frame with the columns `text` and `tokens`."""
        return classical_positive_proba(self.pipeline, frame, self.where)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.score(self.encode(texts))
