"""Atomic writes: a stage killed half-way never leaves an output that looks finished.

Every file or folder a stage writes is first written to a hidden `.NAME.tmp-PID` sibling
(ignored by Git and DVC), then moved into place with one rename. :func:`atomic_outputs`
does the same for all of a stage's outs at once: none is replaced until every one of them
is written, so a failure part-way leaves the previous run's outs as they were.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("imdb_sentiment.atomic")


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


def _temporary_sibling(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_siblings(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    _remove(tmp)
    return tmp


def _move_into_place(tmp: Path, final: Path) -> None:
    # os.replace cannot replace a non-empty folder: clear the old output first. A kill
    # between the two leaves no output at all, which DVC reruns.
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `final` to write a file or folder into; on success move
    it into place with one rename, on failure remove it."""
    with atomic_outputs(final) as (tmp,):
        yield tmp


@contextmanager
def atomic_outputs(*finals: Path | str) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per output; only when the block ends without an error are
    they moved into place, all of them, one after the other."""
    paths = [Path(final) for final in finals]
    temps: list[Path] = []
    try:
        temps = [_temporary_sibling(final) for final in paths]
        yield tuple(temps)
        for tmp, final in zip(temps, paths, strict=True):
            _move_into_place(tmp, final)
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise


def json_text(payload: Any) -> str:
    return json.dumps(payload, indent=2) + "\n"


def write_json(path: Path | str, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(payload), encoding="utf-8")
