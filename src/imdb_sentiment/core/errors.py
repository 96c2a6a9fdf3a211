"""How a stage fails: a problem the user can fix becomes one `error:` line and exit status 1.

A `StageError` carries that line. Disk-full, read-only and permission errors from the
operating system are reported the same way, naming the path, since the user fixes those
too; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

from imdb_sentiment.core.logs import setup_logging

# OSErrors a user fixes (free space, write permission), reported as one line.
USER_FIXABLE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


class StageError(Exception):
    """A problem the user can fix (bad param, bad data, no network): reported in one line."""


def one_line(text: object, limit: int = 300) -> str:
    """`text` with its white space collapsed and cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); a StageError (or a disk or permission error) becomes one
    `error:` line and exit status 1, Ctrl-C the line `error: interrupted` and status 130."""
    setup_logging()
    try:
        main()
    except KeyboardInterrupt:
        # Outs are written atomically: an interrupted stage leaves no half-written one.
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except StageError as exc:
        print(f"error: {one_line(exc, 2000)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        where = exc.filename if exc.filename is not None else "a file the stage writes"
        print(f"error: {where}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
