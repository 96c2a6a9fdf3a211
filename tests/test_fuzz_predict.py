"""Property-based tests (Hypothesis): whatever text or bytes reach predict's readers (as
arguments, on stdin, in a text or CSV file), the result is the scored rows plus one
`error:` line per row that cannot be scored, never a traceback; and every output format
holds exactly those rows, safely (no terminal control character in any format: one line
per row in the table, JSON lines that keep the exact text escaped, CSV cells that
round-trip with control characters as spaces).

Most examples run predict's readers and writers directly with a stub scorer, so that a
hundred cost well under a second; two end-to-end calls run the real command in-process
with tiny trained models.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evaluate_workspace import chdir
from hostile_workspace import build_small_workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdb_sentiment.cli import predict
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.text.cleaning import CleaningParams, clean_text
from imdb_sentiment.text.reviews import (
    FORMULA_START,
    Reviews,
    clean_reviews,
    display_safe,
    format_rows,
    read_reviews,
)

FAST = settings(max_examples=100, deadline=None, database=None)
# End-to-end examples load a model each: fewer of them.
END_TO_END = settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ROW_ERROR = re.compile(
    r"^error: review (\d+)(?:: not (?:UTF-8|text) \([^)]*\)| is empty); not scored$"
)
DEFAULT = CleaningParams()
# As `prepare` cleans by default, and with no cleaning at all: then line breaks, tabs and
# markup reach the output as they came.
CLEANINGS = st.sampled_from([DEFAULT, CleaningParams(clean_html=False, normalize_whitespace=False)])
BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}

# Fragments most likely to trip readers and writers: markup that cleaning removes,
# formula starts, terminal escapes, every kind of line break, quotes and separators.
FRAGMENTS = st.sampled_from(
    ["<br />", "<b>", "&amp;", "=", "+", "-", "@", "\x1b[31m", "\x1b]0;t\x07", "\r", "\n"]
    + ["\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u202e", "\ufeff", '"', ",", "\t"]
    + [" ", "superb", "dull", "\x00", "\udcff"]
)
ANY_TEXT = st.lists(st.one_of(st.text(st.characters(), max_size=12), FRAGMENTS), max_size=8).map(
    "".join
)
LINES_OF_BYTES = st.lists(
    st.one_of(st.binary(max_size=30), ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))),
    max_size=10,
).map(b"\n".join)
ANY_BYTES = st.one_of(st.binary(max_size=300), LINES_OF_BYTES)


def csv_bytes(cells: list[bytes]) -> bytes:
    """A CSV file with a `text` column holding `cells`, quoted as a writer would."""
    quoted = (b'"' + cell.replace(b'"', b'""') + b'",1' for cell in cells)
    return b"text,other\n" + b"\n".join(quoted) + b"\n"


# Files a spreadsheet, a script or a careless hand writes: a header (or none), then
# fragments that make fields, quotes (closed or not), blank and white-space lines, every
# line ending, NUL, bytes that are not UTF-8.
CSV_HEADERS = st.sampled_from(
    [b"text\n", b"text,id\n", b"id,text\r\n", b"\xef\xbb\xbftext,id\n", b"text,text\n"]
    + [b'"text"\n', b"\n \t\ntext\n", b"Text\n", b"", b"id\n"]
)
CSV_FRAGMENTS = st.sampled_from(
    [b"superb", b"dull", b",", b",", b'"', b'""', b"\n", b"\n", b"\r", b"\r\n", b" ", b"\t"]
    + [b"\x00", b"\xff", "caf\u00e9".encode(), b"<br />", b"=1+1", b"\n\n", b"7"]
)
CSV_LIKE = st.tuples(CSV_HEADERS, st.lists(CSV_FRAGMENTS, max_size=25).map(b"".join)).map(b"".join)
CSV_FILES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.binary(max_size=30), max_size=8).map(csv_bytes),
    st.lists(ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), max_size=8).map(csv_bytes),
    CSV_LIKE,
)


class BinaryStdin(io.TextIOWrapper):
    """A stdin whose bytes are `data`, as a pipe gives them."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")


def stub_proba(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for a model: P(positive) from the text's length."""
    return np.array([(len(text) % 101) / 100 for text in texts], dtype=np.float64)


def expected_outcome(value: bytes | str, cleaning: CleaningParams = DEFAULT) -> str | None:
    """What predict must make of one input review: its cleaned text, or None when it is
    reported (not UTF-8, or empty once cleaned)."""
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        text.encode("utf-8")
    except UnicodeError:
        return None
    cleaned = clean_text(
        text, clean_html=cleaning.clean_html, normalize_whitespace=cleaning.normalize_whitespace
    )
    return cleaned if cleaned.strip() else None


def score(reviews: Reviews, cleaning: CleaningParams = DEFAULT) -> tuple[list[dict], list[str]]:
    """The rows and the stderr lines predict gives for `reviews`, with the stub scorer."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        positions, texts = clean_reviews(reviews, cleaning)
    rows = predict.result_rows(positions, texts, stub_proba(texts))
    return rows, stderr.getvalue().splitlines()


def check_accounting(reviews: Reviews, rows: list[dict], lines: list[str]) -> None:
    """Every review is either one row or one `error:` line, in input order."""
    reported = []
    for line in lines:
        match = ROW_ERROR.match(line)
        assert match, line
        reported.append(int(match.group(1)))
    scored = [row["index"] for row in rows]
    assert sorted(scored + reported) == list(range(1, len(reviews.texts) + 1))
    assert scored == sorted(scored) and reported == sorted(reported)
    for row in rows:
        assert row["review"].strip() and row["review"].encode("utf-8")
        assert row["label"] == ("POSITIVE" if row["p_positive"] >= 0.5 else "NEGATIVE")


def unsafe_on_a_terminal(char: str) -> bool:
    if char == "\n":
        return False
    category = unicodedata.category(char)
    return category in ("Cc", "Zl", "Zp") or unicodedata.bidirectional(char) in BIDI_CONTROLS


def check_formats(rows: list[dict]) -> None:
    """Each format holds exactly `rows`: a table of one safe line per row, JSON lines that
    survive any line splitter, a CSV whose cells come back (formulas quoted)."""
    table = format_rows(rows, "table")
    assert table.count("\n") == len(table.splitlines()) == len(rows) + 1
    assert not [char for char in table if unsafe_on_a_terminal(char)]

    text = format_rows(rows, "jsonl")
    assert [json.loads(line) for line in text.splitlines()] == rows  # the exact text, escaped
    assert not [char for char in text if unsafe_on_a_terminal(char)]

    text = format_rows(rows, "csv")
    assert not [char for char in text if unsafe_on_a_terminal(char)]
    read_back = list(csv.DictReader(io.StringIO(text, newline="")))
    shown = [display_safe(row["review"]) for row in rows]  # control characters as spaces
    assert [row["review"] for row in read_back] == [
        "'" + review if review.startswith(FORMULA_START) else review for review in shown
    ]
    assert [int(row["index"]) for row in read_back] == [row["index"] for row in rows]


def check_expected(
    values: list[bytes | str], rows: list[dict], cleaning: CleaningParams = DEFAULT
) -> None:
    outcomes = [expected_outcome(value, cleaning) for value in values]
    assert [row["review"] for row in rows] == [text for text in outcomes if text is not None]
    assert [row["index"] for row in rows] == [
        index for index, text in enumerate(outcomes, 1) if text is not None
    ]


@FAST
@given(st.lists(ANY_TEXT, min_size=1, max_size=8), CLEANINGS)
def test_any_arguments(arguments: list[str], cleaning: CleaningParams) -> None:
    reviews = read_reviews(arguments, None, "text")
    rows, lines = score(reviews, cleaning)
    check_accounting(reviews, rows, lines)
    check_expected(arguments, rows, cleaning)
    check_formats(rows)


@FAST
@given(ANY_BYTES)
def test_any_bytes_on_stdin(data: bytes) -> None:
    reviews = read_reviews([], "-", "text", stdin=BinaryStdin(data))
    rows, lines = score(reviews)
    check_accounting(reviews, rows, lines)
    check_expected(data.splitlines(), rows)
    check_formats(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


@FAST
@given(data=ANY_BYTES, cleaning=CLEANINGS)
def test_any_bytes_in_a_text_file(files: Path, data: bytes, cleaning: CleaningParams) -> None:
    path = files / "reviews.txt"
    path.write_bytes(data)
    reviews = read_reviews([], str(path), "text")
    rows, lines = score(reviews, cleaning)
    check_accounting(reviews, rows, lines)
    check_expected(data.splitlines(), rows, cleaning)
    check_formats(rows)


def csv_rows(text: str) -> list[list[str]] | None:
    """The rows of CSV `text` by the rules predict documents (RFC 4180), parsed here apart
    from the project's reader: fields split by commas; a field that starts with `"` is
    quoted (it may hold commas and line breaks, `""` is one quote) and ends at its closing
    quote; a `"` inside an unquoted field is itself; rows end at \\n, \\r\\n or \\r
    outside quotes; an empty line is skipped. None when a quoted field never ends or is
    followed by anything but a comma or the end of its row."""
    rows: list[list[str]] = []
    row: list[str] = []
    field: list[str] = []
    state, quoted, i = "start", False, 0  # states: start, plain, quoted, closed

    def end_row() -> None:
        row.append("".join(field))
        if row != [""] or quoted:
            rows.append(list(row))

    while i < len(text):
        char = text[i]
        i += 1
        if state == "quoted":
            if char == '"':
                state = "closed"
            else:
                field.append(char)
        elif state == "closed" and char == '"':
            field.append('"')
            state = "quoted"
        elif char == ",":
            row.append("".join(field))
            field, state = [], "start"
        elif char in "\r\n":
            if char == "\r" and text[i : i + 1] == "\n":
                i += 1
            end_row()
            row, field, state, quoted = [], [], "start", False
        elif state == "closed":
            return None
        elif state == "start" and char == '"':
            state, quoted = "quoted", True
        else:
            field.append(char)
            state = "plain"
    if state == "quoted":
        return None
    end_row()
    return rows


def expected_csv_cells(data: bytes) -> list[str] | None:
    """The `text` column's cells (not UTF-8 bytes as surrogates, a missing cell empty), or
    None when the bytes are no readable CSV with a `text` column: no row at all, a header
    (the first row, after a UTF-8 BOM) that is not UTF-8 or has no field named `text`, a
    quoted field that never ends, or a row with more fields than the header."""
    rows = csv_rows(data.decode("utf-8", "surrogateescape").removeprefix("\ufeff"))
    if not rows or "text" not in rows[0] or any(len(row) > len(rows[0]) for row in rows):
        return None
    try:
        "".join(rows[0]).encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8
        return None
    column = rows[0].index("text")
    return [row[column] if column < len(row) else "" for row in rows[1:]]


@FAST
@given(data=CSV_FILES, cleaning=CLEANINGS)
def test_any_bytes_in_a_csv_file(files: Path, data: bytes, cleaning: CleaningParams) -> None:
    """A CSV file is read as the rules of csv_rows() read it: its reviews are the `text`
    column's cells in order, a cell that is not UTF-8 reported; it is refused, in one line
    naming it, exactly when those rules find no readable CSV with a `text` column."""
    path = files / "reviews.csv"
    path.write_bytes(data)
    expected = expected_csv_cells(data)
    try:
        reviews = read_reviews([], str(path), "text")
    except StageError as error:
        message = str(error)
        assert expected is None, f"refused ({message}) but reads as {expected}"
        assert message.startswith(f"{path}: ") and "\n" not in message
        return
    assert expected is not None, "read, but the file has no readable text column"
    assert len(reviews.texts) == len(expected), (reviews.texts, expected)
    for position, cell in enumerate(expected):
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8: a bad row, reported
            assert position in reviews.bad and reviews.texts[position] == "", (position, cell)
        else:
            assert position not in reviews.bad and reviews.texts[position] == cell, position
    rows, lines = score(reviews, cleaning)
    check_accounting(reviews, rows, lines)
    check_expected(expected, rows, cleaning)
    check_formats(rows)


# --- end to end, with tiny trained models -----------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_small_workspace(tmp_path_factory.mktemp("fuzz-predict") / "ws", tiny_model_dir)


@contextlib.contextmanager
def stdin_bytes(data: bytes) -> Iterator[None]:
    previous = sys.stdin
    sys.stdin = BinaryStdin(data)
    try:
        yield
    finally:
        sys.stdin = previous


def run_main(workspace: Path, argv: list[str], data: bytes) -> tuple[int, str, str]:
    """predict.main in `workspace` with `data` on stdin: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        chdir(workspace),
        stdin_bytes(data),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            predict.main(argv)
            status = 0
        except SystemExit as exit_info:
            status = exit_info.code
    return status, out.getvalue(), err.getvalue()


def check_end_to_end(data: bytes, status: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    if not data.splitlines():
        assert status == 1 and lines == [
            "error: no reviews given: pass them as arguments, with --file, or on stdin"
        ]
        return
    rows = [json.loads(line) for line in out.splitlines()]
    outcomes = [expected_outcome(line) for line in data.splitlines()]
    assert [row["review"] for row in rows] == [text for text in outcomes if text is not None]
    skipped = outcomes.count(None)
    assert status == (1 if skipped else 0)
    assert len(lines) == skipped + (1 if skipped else 0)  # the last line sums them up
    for row in rows:
        assert 0.0 <= row["p_positive"] <= 1.0


@END_TO_END
@given(data=ANY_BYTES)
def test_any_bytes_on_stdin_end_to_end(workspace: Path, data: bytes) -> None:
    status, out, err = run_main(workspace, ["--model", "linear", "--format", "jsonl"], data)
    check_end_to_end(data, status, out, err)


def test_random_bytes_through_distilbert(workspace: Path) -> None:
    rng = random.Random(0)
    lines = [rng.randbytes(rng.randint(0, 60)) for _ in range(40)]
    data = b"\n".join(lines + [b"A superb film.", "Caf\u00e9 \u2028 night".encode()])
    status, out, err = run_main(workspace, ["--format", "jsonl"], data)
    check_end_to_end(data, status, out, err)
    assert status == 1 and len(out.splitlines()) >= 2
