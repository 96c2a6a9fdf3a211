"""Helpers shared by every stage: params, errors, logging, atomic writes, metrics.

Every stage module has a ``main()`` that reads its own section of ``params.yaml`` through
:func:`load_section`, so a bad value stops the stage with one line before any data or
model is loaded, and every file it writes goes through :func:`atomic_path`, so a stage
killed half-way never leaves something that looks finished.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import random
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

PARAMS_FILE = Path("params.yaml")
PREPARED_DIR = Path("data/prepared")
TOKENIZED_DIR = Path("data/tokenized")
# The tokenized splits as pandas DataFrames (Parquet), for the classical models.
TOKENIZED_FRAME_DIR = TOKENIZED_DIR / "frame"
# The tokenized splits as a `datasets.DatasetDict` saved with `save_to_disk`, for the Trainer.
TOKENIZED_HF_DIR = TOKENIZED_DIR / "hf"
MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
SPLITS = ("train", "validation", "test")
ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}
LABEL2ID = {name: idx for idx, name in ID2LABEL.items()}

log = logging.getLogger("imdb_sentiment")


class StageError(Exception):
    """A problem the user can fix (bad param, bad data, no network): reported in one line."""


class Params(BaseModel):
    """Base of every params schema: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Params):
    # A Hugging Face dataset id, a folder of Parquet files, or an aclImdb/ folder.
    source: str = Field("stanfordnlp/imdb", min_length=1)


class ModelParams(Params):
    # A Hugging Face model id or a local directory saved with save_pretrained.
    name: str = Field("distilbert/distilbert-base-uncased", min_length=1)


class SharedParams(Params):
    """The top-level keys that several stages read."""

    seed: int = Field(42, ge=0, le=2**32 - 1)


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml as DVC does: YAML 1.2, so `5e-05` written by `dvc exp run -S` is a float."""
    try:
        with open(path, encoding="utf-8") as handle:
            params = YAML(typ="safe", pure=True).load(handle)
    except FileNotFoundError as exc:
        raise StageError(f"{path} not found: run the stage from the repository root") from exc
    except YAMLError as exc:
        raise StageError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(params, dict):
        raise StageError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


SchemaT = TypeVar("SchemaT", bound=Params)


def load_section(params: Mapping[str, Any], key: str, schema: type[SchemaT]) -> SchemaT:
    """Validate one section of params.yaml against `schema`; fail with one line naming the key.

    A missing section takes the schema's defaults, so params.yaml only needs what changes.
    """
    raw = params.get(key)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise StageError(f"params.yaml: {key} must be a mapping, got {raw!r}")
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as exc:
        raise StageError(_describe_validation_error(key, exc)) from exc


def load_shared(params: Mapping[str, Any]) -> SharedParams:
    """Validate the top-level scalar keys (the seed) that several stages share."""
    shared = {k: params[k] for k in SharedParams.model_fields if k in params}
    try:
        return SharedParams.model_validate(shared)
    except ValidationError as exc:
        raise StageError(_describe_validation_error(None, exc)) from exc


def _describe_validation_error(section: str | None, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    key = f"{section}.{loc}" if section else loc
    if first["type"] == "extra_forbidden":
        return f"params.yaml: unknown key {key}"
    if first["type"] == "missing":
        return f"params.yaml: missing key {key}"
    return f"params.yaml: {key} = {first.get('input')!r}: {first['msg']}"


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a StageError becomes one `error:` line and exit status 1."""
    setup_logging()
    try:
        main()
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) torch, so reruns give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _remove_abandoned_siblings(final: Path) -> None:
    """Remove the `.NAME.tmp-PID` siblings of `final` left by writers that were killed (their
    PID no longer runs); a live writer's copy is left alone."""
    for sibling in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        pid = sibling.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_is_alive(int(pid)):
            log.info("removing %s, left half-written by a killed run", sibling)
            _remove(sibling)


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `final` to write a file or folder into; on success move
    it into place with one rename, on failure remove it.

    A stage killed while writing leaves only a hidden `.NAME.tmp-PID` sibling (ignored by
    Git and DVC), never a half-written `final`; the next write of `final` removes it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_siblings(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
        # os.replace cannot replace a non-empty folder: clear the old output first. A kill
        # between the two leaves no output at all, which DVC reruns.
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_json(path: Path | str, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def is_local_path(value: str) -> bool:
    """Whether a `data.source` / `model.name` value names a local path rather than a hub id."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()


T = TypeVar("T")


def load_from_hub(load: Callable[[], T], *, param: str, value: str, hint: str) -> T:
    """Call `load` (which reaches the Hugging Face Hub for `value`) and turn any failure into
    one line that names the param to point at a local copy."""
    try:
        return load()
    except Exception as exc:  # the hub client raises many unrelated types when offline
        detail = " ".join(str(exc).split())[:200]
        raise StageError(
            f"could not load {param}={value!r} from the Hugging Face Hub "
            f"({type(exc).__name__}: {detail}); without network, set {param} in params.yaml "
            f"to {hint}"
        ) from exc


def classification_metrics(
    labels: np.ndarray, positive_proba: np.ndarray
) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1, ROC AUC and log loss of binary predictions.

    `positive_proba` is P(label == 1); the predicted label is proba >= 0.5, which is the
    argmax of two-class probabilities. ROC AUC is None (JSON null) when only one class is
    present, since it is undefined there.
    """
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    labels = np.asarray(labels)
    positive_proba = np.asarray(positive_proba, dtype=np.float64)
    predicted = (positive_proba >= 0.5).astype(labels.dtype)
    single_class = len(np.unique(labels)) < 2
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": None if single_class else float(roc_auc_score(labels, positive_proba)),
        "log_loss": float(
            log_loss(labels, np.clip(positive_proba, 1e-15, 1 - 1e-15), labels=[0, 1])
        ),
    }


def update_params_file(path: Path | str, updates: Mapping[str, Any]) -> None:
    """Set dotted keys (`tokenize.max_length`) in a params.yaml, keeping its comments,
    as `dvc exp run -S` does; used by the tests and benchmarks to make variants."""
    yaml = YAML()
    path = Path(path)
    params = yaml.load(path.read_text(encoding="utf-8"))
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        yaml.dump(params, handle)
