"""How stages and commands log: one format, to stderr; the project's own progress at INFO,
the libraries' lines only from WARNING up, and each line once.

`IMDB_SENTIMENT_LOG_LEVEL=DEBUG` (or `INFO`) shows the libraries' lines at that level too
(transformers, datasets and huggingface_hub included); `WARNING` or `ERROR` quiets the
project's own INFO lines as well.
"""

from __future__ import annotations

import logging
import os
import sys

LEVEL_ENV = "IMDB_SENTIMENT_LOG_LEVEL"
PROJECT_LOGGER = "imdb_sentiment"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The Hugging Face libraries set their own loggers' levels from these when imported.
HF_VERBOSITY_ENVS = ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY")


class ShowOnce(logging.Filter):
    """For the root handler: pass each record once.

    A record is dropped when a library's own handler prints it already (transformers,
    datasets and huggingface_hub add one to their top logger, which still propagates to the
    root), and when the same warning from the same logger was shown before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shown: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False
            if not logger.propagate:
                break
            logger = logger.parent  # type: ignore[assignment]
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key in self.shown:
            return False
        self.shown.add(key)
        return True


def requested_level() -> tuple[int | None, str | None]:
    """The level `IMDB_SENTIMENT_LOG_LEVEL` asks for (None when unset), and a complaint
    when it names no level."""
    value = os.environ.get(LEVEL_ENV, "").strip().upper()
    if not value:
        return None, None
    if value not in LEVELS:
        return None, f"{LEVEL_ENV}={value!r} is not one of {', '.join(LEVELS)}; ignored"
    return logging.getLevelName(value), None


def setup_logging() -> None:
    """Log to stderr: the project from INFO and libraries from WARNING, or both from the
    level `IMDB_SENTIMENT_LOG_LEVEL` names; each line once."""
    requested, complaint = requested_level()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    )
    handler.addFilter(ShowOnce())
    logging.basicConfig(level=requested or logging.WARNING, handlers=[handler])
    logging.getLogger(PROJECT_LOGGER).setLevel(requested or logging.INFO)
    if requested is not None and requested < logging.WARNING:
        for name in HF_VERBOSITY_ENVS:
            os.environ.setdefault(name, logging.getLevelName(requested).lower())
    if complaint:
        logging.getLogger(PROJECT_LOGGER).warning(complaint)
