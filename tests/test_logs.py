"""What a stage prints: its own INFO lines, no library's INFO lines, each warning once; with
IMDB_SENTIMENT_LOG_LEVEL=DEBUG the libraries' lines too."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import subprocess_env

from imdb_sentiment.core.logs import ShowOnce

# A stage's main() that logs as the project and its libraries do: its own progress, an INFO
# line on the root logger (ONNX Runtime's quantizer), the Hub client's retry warnings (its
# logger has a handler of its own, and propagates to the root's), and a warning the project
# gives twice.
STAGE = """
import logging
from imdb_sentiment.core.errors import run_stage

def main():
    from huggingface_hub.utils import logging as hub_logging
    logging.getLogger("imdb_sentiment.demo").info("own progress")
    logging.info("Quantization parameters for tensor ...")
    for retry in (1, 2):
        hub_logging.get_logger("huggingface_hub.demo").warning(f"Retrying [Retry {retry}/5].")
        logging.getLogger("imdb_sentiment.demo").warning("the same warning")
    logging.getLogger("imdb_sentiment.demo").debug("own detail")

run_stage(main)
"""


def run_stage_demo(tmp_path: Path, **env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", STAGE],
        cwd=tmp_path,
        env={**subprocess_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stderr.splitlines()


@pytest.mark.e2e
def test_a_stage_prints_its_own_lines_and_each_warning_once(tmp_path: Path) -> None:
    lines = run_stage_demo(tmp_path)
    assert [line for line in lines if "own progress" in line][0].endswith(
        "INFO imdb_sentiment.demo: own progress"
    )
    assert not [line for line in lines if "Quantization parameters" in line], lines
    for retry in (1, 2):
        assert len([line for line in lines if f"Retry {retry}/5" in line]) == 1, lines
    assert len([line for line in lines if "the same warning" in line]) == 1, lines
    assert not [line for line in lines if "own detail" in line], lines


@pytest.mark.e2e
def test_the_log_level_switch_shows_the_libraries_lines(tmp_path: Path) -> None:
    lines = run_stage_demo(tmp_path, IMDB_SENTIMENT_LOG_LEVEL="debug")
    assert [
        line for line in lines if line.endswith("INFO root: Quantization parameters for tensor ...")
    ]
    assert [line for line in lines if line.endswith("DEBUG imdb_sentiment.demo: own detail")]
    assert len([line for line in lines if "Retry 1/5" in line]) == 1, lines


@pytest.mark.e2e
def test_a_wrong_log_level_is_named_and_ignored(tmp_path: Path) -> None:
    lines = run_stage_demo(tmp_path, IMDB_SENTIMENT_LOG_LEVEL="loud")
    assert [
        line
        for line in lines
        if line.endswith(
            "WARNING imdb_sentiment: IMDB_SENTIMENT_LOG_LEVEL='LOUD' is not one of DEBUG, "
            "INFO, WARNING, ERROR; ignored"
        )
    ], lines
    assert [line for line in lines if "own progress" in line]


def test_show_once_leaves_a_library_with_its_own_handler_to_it() -> None:
    library = logging.getLogger("a_library_with_a_handler")
    library.addHandler(logging.NullHandler())
    try:
        record = library.makeRecord(library.name, logging.WARNING, __file__, 1, "x", (), None)
        assert ShowOnce().filter(record) is False
    finally:
        library.handlers.clear()


def test_show_once_passes_a_warning_once_and_progress_always() -> None:
    show = ShowOnce()
    logger = logging.getLogger("imdb_sentiment.test")

    def passes(level: int, message: str) -> bool:
        return show.filter(logger.makeRecord(logger.name, level, __file__, 1, message, (), None))

    assert [passes(logging.WARNING, "slow") for _ in range(3)] == [True, False, False]
    assert passes(logging.WARNING, "another") is True
    assert [passes(logging.INFO, "step") for _ in range(2)] == [True, True]
