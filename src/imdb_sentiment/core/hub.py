"""Reaching the Hugging Face Hub: telling a hub id from a local path, and turning a Hub that
cannot be reached into one line, at once, that names the param to point at a local copy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from imdb_sentiment.core.errors import StageError, one_line

T = TypeVar("T")
LOCAL_HINT = "a local directory saved with save_pretrained"
# The params `make quick` sets from its DATA= and MODEL= folders.
QUICK_PARAMS = ("data.source", "model.name")
QUICK_HINT = "make quick DATA=<data folder> MODEL=<model folder>"
# Seconds to wait for the Hub's answer before calling it unreachable.
REACH_TIMEOUT_S = 5.0


def is_local_path(value: str) -> bool:
    """Whether a `data.source` / `model.name` value names a local path rather than a hub id."""
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()


@functools.cache
def hub_unreachable(timeout: float = REACH_TIMEOUT_S) -> str | None:
    """Why the Hub cannot be reached (None when it answers, or with HF_HUB_OFFLINE set: the
    libraries then read their cache and fail at once without it).

    One request, with the client (and proxy settings) huggingface_hub downloads with: the
    libraries retry an unreachable Hub for about a minute before they give up.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # connection, DNS, proxy and TLS errors come in many types
        return f"{constants.ENDPOINT}: {type(exc).__name__}: {one_line(exc, 150)}"
    return None


def local_copy_hint(param: str, hint: str) -> str:
    """How to go without the Hub: the param to set, `make quick`'s DATA= and MODEL= for
    the params it sets, and the Hugging Face cache."""
    quick = f" (for a quick run: {QUICK_HINT})" if param in QUICK_PARAMS else ""
    return (
        f"without network, set {param} to {hint}{quick}, or set HF_HUB_OFFLINE=1 to use the "
        "Hugging Face cache"
    )


def load_from_hub(load: Callable[[], T], *, param: str, value: str, hint: str) -> T:
    """Call `load` (which reaches the Hugging Face Hub for `value`) once the Hub answers;
    an unreachable Hub or a failed load is one line that names the param to point at a
    local copy."""
    reason = hub_unreachable()
    if reason is not None:
        raise StageError(
            f"{param}={value!r} is on the Hugging Face Hub, which cannot be reached ({reason}); "
            f"{local_copy_hint(param, hint)}"
        )
    try:
        return load()
    except Exception as exc:  # the hub client raises many unrelated types when offline
        raise StageError(
            f"could not load {param}={value!r} from the Hugging Face Hub "
            f"({type(exc).__name__}: {one_line(exc, 200)}); {local_copy_hint(param, hint)}"
        ) from exc
