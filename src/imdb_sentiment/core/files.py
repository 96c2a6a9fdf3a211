"""What stands at a path before the project reads it or replaces it.

Only regular files are read as inputs and only a regular file, a folder or nothing is
replaced by an output. Anything else named like one (a FIFO, a character or block device,
a socket, a link that loops) is refused: reading a FIFO waits for a writer forever,
reading a device may never end, and replacing one (`/dev/null`, as root) breaks the system.
A symlink is followed when reading; as an output it is replaced as a link, never written
through, and only when what it points at could itself be replaced.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from imdb_sentiment.core.errors import StageError

KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(StageError):
    """A path that holds something other than a regular file where one is read."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(f"{path}: {kind}, not a regular file")
        self.path = Path(path)
        self.kind = kind


def describe(mode: int) -> str:
    """`a FIFO`, `a character device`, ... for a stat mode; `a folder`, `a regular file`."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return next((name for test, name in KINDS if test(mode)), "a special file")


def kind_of(path: Path | str) -> str | None:
    """What `path` holds, links followed: `a regular file`, `a folder`, another kind, or
    None for nothing (no such path, or a link to nothing)."""
    try:
        return describe(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link that loops"
        raise


def check_replaceable(path: Path | str, what: str = "") -> None:
    """Stop in one line unless `path` holds a regular file, a folder or nothing (a link is
    judged by what it points at): what the project may replace with its own output."""
    kind = kind_of(path)
    if kind not in (None, "a regular file", "a folder"):
        label = f"{what} {path}" if what else str(path)
        raise StageError(f"{label}: {kind}, not a regular file; the project replaces only files")


def check_regular_tree(folder: Path, limit: int = 10_000) -> None:
    """Stop in one line when anything in `folder` (a model folder: a handful of files) is
    neither a regular file nor a folder: a library that opens it would wait or read on."""
    for count, path in enumerate(folder.rglob("*")):
        if count >= limit:
            raise StageError(f"{folder}: more than {limit:,} files; is this a model folder?")
        kind = kind_of(path) or "a link to nothing"
        if kind not in ("a regular file", "a folder"):
            raise NotRegularFile(path, kind)


def open_regular(path: Path | str) -> BinaryIO:
    """`path` opened for reading in binary, or NotRegularFile: opened without blocking (a
    FIFO would wait for a writer) and checked on the open descriptor, so nothing can be
    swapped in between the check and the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(path, "a link that loops") from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, describe(mode))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, limit: int | None = None) -> bytes:
    """The bytes of the regular file `path`; at most `limit` of them, else one line."""
    with open_regular(path) as handle:
        data = handle.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise StageError(f"{path}: larger than {limit:,} bytes; is this the right file?")
    return data
