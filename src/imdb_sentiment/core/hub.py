"""Reaching the Hugging Face Hub: telling a hub id from a local path, and turning a failed
download into one line that names the param to point at a local copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from imdb_sentiment.core.errors import StageError, one_line

T = TypeVar("T")
LOCAL_HINT = "a local directory saved with save_pretrained"


def is_local_path(value: str) -> bool:
    """Whether a `data.source` / `model.name` value names a local path rather than a hub id."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()


def load_from_hub(load: Callable[[], T], *, param: str, value: str, hint: str) -> T:
    """Call `load` (which reaches the Hugging Face Hub for `value`) and turn any failure into
    one line that names the param to point at a local copy."""
    try:
        return load()
    except Exception as exc:  # the hub client raises many unrelated types when offline
        raise StageError(
            f"could not load {param}={value!r} from the Hugging Face Hub "
            f"({type(exc).__name__}: {one_line(exc, 200)}); without network, set {param} "
            f"to {hint}"
        ) from exc
