"""Atomic writes: a stage killed half-way never leaves an output that looks finished.

Every file or folder a stage writes is first written inside a private folder beside it,
`.NAME.tmp-RANDOM/NAME` (ignored by Git and DVC), then moved into place with one rename.
:func:`atomic_outputs` does the same for all of a stage's outs at once: none is replaced
until every one of them is written, so a failure part-way leaves the previous run's outs
as they were.

The private folder is created exclusively under a random name, and holds a marker naming
the process and machine that made it. A later write removes what a killed writer left
only when that marker is there and its process no longer runs: a file or folder that
merely looks like a temporary copy is never touched. (A kill in the instant between
making the folder and marking it leaves an empty folder behind, which stays: nothing in
it tells it from one that is not ours.) An output is replaced only when what
stands there is a regular file, a folder or nothing (`core.files.check_replaceable`).
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from imdb_sentiment.core.files import check_replaceable, read_regular

log = logging.getLogger("imdb_sentiment.atomic")

MARKER = ".imdb-sentiment-tmp.json"
OWNER = "imdb-sentiment atomic write"


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    # A killed process whose parent died too stays a zombie until something reaps it (in a
    # container whose first process reaps nothing, for good): it answers signal 0 but
    # writes nothing any more.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a private folder this project made, or None when `folder` is anything
    else (not a real folder, no marker, a marker that is not ours)."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    try:
        marker = json.loads(read_regular(folder / MARKER, limit=4096))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != OWNER:
        return None
    return marker


def _abandoned(folder: Path, names: str, any_writer: bool) -> bool:
    marker = _marker(folder)
    if marker is None or not fnmatch.fnmatchcase(str(marker.get("name")), names):
        return False
    if any_writer:
        return True
    pid = marker.get("pid")
    same_host = marker.get("host") == socket.gethostname()
    return same_host and isinstance(pid, int) and not _process_is_alive(pid)


def remove_abandoned(folder: Path, names: str, any_writer: bool = False) -> None:
    """Remove the private folders that killed writers of the outputs `names` (a glob) in
    `folder` left: ours by their marker, their process gone (or, with `any_writer`,
    whatever process made them: for a caller that knows no writer runs any more)."""
    for sibling in folder.glob(f".{names}.tmp-*"):
        if _abandoned(sibling, names, any_writer):
            log.info("removing %s, left half-written by a killed run", sibling)
            shutil.rmtree(sibling, ignore_errors=True)


def _private_folder(final: Path) -> Path:
    """A new folder `.NAME.tmp-RANDOM` beside `final`, made by this call alone (mkdir fails
    on any existing name), with its marker; the output is written to `folder / NAME`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(final)
    remove_abandoned(final.parent, glob.escape(final.name))
    while True:
        folder = final.parent / f".{final.name}.tmp-{secrets.token_hex(6)}"
        try:
            folder.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    marker = {"written_by": OWNER, "name": final.name, "pid": os.getpid()}
    # Written beside, then renamed: a marker is whole or absent, never cut short.
    try:
        part = folder / f"{MARKER}.part"
        part.write_text(json.dumps({**marker, "host": socket.gethostname()}))
        os.replace(part, folder / MARKER)
    except BaseException:  # a full disk, Ctrl-C: the folder is this call's own, so it goes
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _move_into_place(tmp: Path, final: Path) -> None:
    # Checked again at the last moment: nothing but a file or folder is ever replaced.
    check_replaceable(final)
    # os.replace cannot replace a non-empty folder: clear the old output first. A kill
    # between the two leaves no output at all, which DVC reruns.
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write a file or folder into (same name as `final`, in a
    private folder beside it); on success move it into place with one rename, on failure
    remove it."""
    with atomic_outputs(final) as (tmp,):
        yield tmp


@contextmanager
def atomic_outputs(*finals: Path | str) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per output; only when the block ends without an error are
    they moved into place, all of them, one after the other."""
    paths = [Path(final) for final in finals]
    folders: list[Path] = []
    try:
        for final in paths:
            folders.append(_private_folder(final))
        yield tuple(folder / final.name for folder, final in zip(folders, paths, strict=True))
        for folder, final in zip(folders, paths, strict=True):
            _move_into_place(folder / final.name, final)
    finally:
        for folder in folders:
            with suppress(OSError):
                shutil.rmtree(folder)


def json_text(payload: Any) -> str:
    return json.dumps(payload, indent=2) + "\n"


def write_json(path: Path | str, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(payload), encoding="utf-8")
