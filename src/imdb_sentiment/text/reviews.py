"""Reading reviews from users and writing scored rows back to them, for `predict`.

Input may be anything: arguments, stdin, a text, CSV or Parquet file, in any encoding. A
review that is not valid UTF-8, not text (a number in a Parquet column) or longer than
`predict.max_review_chars` becomes a *bad row*, reported in one line and not scored; the
others are still scored. A CSV or Parquet file's other columns (an `id`, say) are carried
to the CSV, JSON lines and Parquet output, so scores join back to their rows. Output is
safe to show and to open: every string cell of the table, the CSV and JSON lines is
cleared of terminal control characters (replaced by a space in the table and the CSV,
escaped as `\\uXXXX` in JSON lines, which keep the exact text), and a CSV cell that a
spreadsheet would run as a formula is quoted with a leading `'`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.params import Params
from imdb_sentiment.text.cleaning import CleaningParams, clean_text

TABLE_TEXT_CHARS = 60
# What a review shown in a terminal table must not hold: C0 and C1 control characters (a
# terminal escape sequence starts with one; it could move the cursor, recolour or retitle
# the terminal), line and paragraph separators (a second line), and the bidirectional
# overrides (text shown in another order than it is).
CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]"
)
# Spreadsheets run a cell that starts with these as a formula (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class PredictParams(Params):
    """The `predict` section: how `imdb-predict` and `imdb-score` take new reviews."""

    # A review longer than this many characters (before cleaning) is reported and not
    # scored: its cost grows with its length, and no real review comes near it.
    max_review_chars: int = Field(100_000, ge=1)


# The columns predict writes for each review; a carried input column of one of these names
# is written as `input_<name>`.
SCORE_COLUMNS = ("index", "label", "score", "p_positive", "review")


@dataclass
class Reviews:
    """Reviews in input order; `bad` maps a position (from 0) to why it cannot be scored;
    `carried` holds a CSV or Parquet file's other columns, indexed by position."""

    texts: list[str] = field(default_factory=list)
    bad: dict[int, str] = field(default_factory=dict)
    # How many of the bad ones are longer than predict.max_review_chars.
    too_long: int = 0
    carried: pd.DataFrame | None = None

    def add(self, value: Any) -> None:
        position = len(self.texts)
        text = ""
        if isinstance(value, bytes):
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[position] = f"not UTF-8 ({exc.reason} at byte {exc.start})"
        elif isinstance(value, str):
            text = value
        elif not pd.api.types.is_scalar(value) or not pd.isna(value):
            # A number, a list or a mapping cell of a Parquet file: not a review.
            self.bad[position] = f"not text (a {type(value).__name__})"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # an argument or CSV cell that was not UTF-8
            self.bad[position] = f"not UTF-8 (character {exc.start + 1})"
            text = ""
        self.texts.append(text)


def _stream_lines(stream: Any) -> list[bytes | str]:
    if stream is None or getattr(stream, "closed", False):
        raise StageError("stdin is closed: pass reviews as arguments or with --file")
    try:
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot read stdin ({one_line(exc)})") from exc
    return raw.splitlines()


def _read_csv(raw: bytes, file: str) -> pd.DataFrame:
    """A CSV file's cells as strings, by RFC 4180 (pandas takes an unnamed first column as
    the index, shifting ids into the reviews, and drops a row after a lone \\r). Bytes not
    UTF-8 stay as surrogates; a BOM, empty lines skipped; names made unique (`text.1`)."""
    text = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    # No cell is longer than the file (the module's default limit is 131,072 characters).
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    try:
        for row in filter(None, reader):
            if rows and len(row) > len(rows[0]):
                found = f"{len(row)} fields, the header {len(rows[0])}"
                raise StageError(f"{file}: line {reader.line_num} has {found}")
            rows.append(row)
    except csv.Error as exc:
        raise StageError(f"{file}: not CSV at line {reader.line_num} ({exc})") from exc
    if not rows:
        raise StageError(f"{file}: no header row: the file holds no CSV")
    try:
        "".join(rows[0]).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StageError(f"{file}: the header is not UTF-8") from exc
    names: list[str] = []
    for position, name in enumerate(rows[0]):
        base = unique = name or f"Unnamed: {position}"
        copies = 0
        while unique in names:
            copies += 1
            unique = f"{base}.{copies}"
        names.append(unique)
    cells = [row + [""] * (len(names) - len(row)) for row in rows[1:]]
    return pd.DataFrame(cells, columns=names, dtype=object)


def read_reviews(texts: Sequence[str], file: str | None, column: str, stdin: Any = None) -> Reviews:
    """The reviews to label: `texts`, then those of `file` (a text file, one review per
    line; a .csv or .parquet file's `column`; `-` for stdin). With neither, stdin."""
    reviews = Reviews()
    for text in texts:
        reviews.add(text)
    if file is None and not texts:
        file = "-"
    if file is None:
        return reviews
    if file == "-":
        for line in _stream_lines(stdin if stdin is not None else sys.stdin):
            reviews.add(line)
        return reviews
    path = Path(file)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = _read_csv(path.read_bytes(), file)
        else:
            for line in path.read_bytes().splitlines():
                reviews.add(line)
            return reviews
    except OSError as exc:
        raise StageError(f"{file}: cannot read reviews ({exc.strerror or exc})") from exc
    except StageError:
        raise
    except Exception as exc:  # pyarrow raises many types for a damaged Parquet file
        raise StageError(
            f"{file}: cannot read reviews ({type(exc).__name__}: {one_line(exc)})"
        ) from exc
    if column not in frame.columns:
        raise StageError(f"{file}: no column {column!r}; it has {list(frame.columns)}")
    dtype = frame[column].dtype
    if not (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)):
        raise StageError(f"{file}: column {column!r} holds {dtype}, not text")
    start = len(reviews.texts)
    for value in frame[column].tolist():
        reviews.add(value)
    # Another column's bytes that are not UTF-8 become U+FFFD: no output format holds them.
    carried = frame.drop(columns=[column]).map(
        lambda cell: (
            cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if isinstance(cell, str)
            else cell
        )
    )
    if len(carried.columns):
        reviews.carried = carried.set_axis(range(start, start + len(frame)), axis="index")
    return reviews


def display_safe(value: Any) -> Any:
    """A string cell with every terminal control character replaced by a space (other
    values as they are): what the table and the CSV show of any column."""
    return CONTROL.sub(" ", value) if isinstance(value, str) else value


def table_cell(text: str, chars: int = TABLE_TEXT_CHARS) -> str:
    """A review as one line of a terminal table: no control characters, at most `chars`."""
    text = display_safe(text)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell no spreadsheet will run: a leading formula character gets a `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _json_value(value: Any) -> Any:
    """A carried cell JSON has no type for: numpy scalars and arrays, dates, bytes."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def json_line(row: dict[str, Any]) -> str:
    """One row as a line of JSON: UTF-8 text kept as it is, but every control character,
    line or paragraph separator and bidi override escaped (JSON escapes only C0 itself),
    so the line shows safely and survives any line splitter."""
    line = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=_json_value)
    return CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", line) + "\n"


def output_frame(rows: list[dict[str, Any]], carried: pd.DataFrame | None = None) -> pd.DataFrame:
    """The scored rows as one table: `index`, the input's carried columns at the rows'
    positions (a name predict writes itself gets the prefix `input_`), then `label`,
    `score`, `p_positive` and `review`. Missing cells are None."""
    frame = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    if carried is None or carried.empty:
        return frame
    kept = carried.reindex([row["index"] - 1 for row in rows])
    kept = kept.rename(columns=lambda name: f"input_{name}" if name in SCORE_COLUMNS else name)
    kept = kept.astype(object).where(kept.notna(), None).reset_index(drop=True)
    return pd.concat([frame[["index"]], kept, frame[list(SCORE_COLUMNS[1:])]], axis=1)


def format_rows(
    rows: list[dict[str, Any]], fmt: str, carried: pd.DataFrame | None = None
) -> str | bytes:
    """The rows as an aligned table, JSON lines, CSV or Parquet (bytes); all but the table
    with the full text and the input's `carried` columns."""
    frame = output_frame(rows, carried)
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if fmt == "jsonl":
        return "".join(json_line(row) for row in frame.to_dict("records"))
    if fmt == "csv":
        # Every text cell quoted: a lone \r in an unquoted cell would end the row for any
        # CSV reader (only \n, the line terminator, makes the writer quote by itself).
        body = frame.map(lambda cell: spreadsheet_safe(display_safe(cell))).to_csv(
            index=False, header=False, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC
        )
        return ",".join(display_safe(str(name)) for name in frame.columns) + "\n" + body
    lines = [f"{'#':>5}  {'label':<8}  {'score':>6}  review"]
    for row in rows:
        lines.append(
            f"{row['index']:>5}  {row['label']:<8}  {row['score']:>6.3f}  "
            f"{table_cell(row['review'])}"
        )
    return "\n".join(lines) + "\n"


def clean_reviews(
    reviews: Reviews,
    cleaning: CleaningParams,
    max_chars: int = PredictParams().max_review_chars,
) -> tuple[list[int], list[str]]:
    """Clean every review as `prepare` did; report each bad, too long or empty one on
    stderr (a review over `max_chars` joins `reviews.bad`). Returns the positions (from 0)
    of the reviews to score and their cleaned text."""
    kept, cleaned = [], []
    for position, review in enumerate(reviews.texts):
        if position not in reviews.bad and len(review) > max_chars:
            reviews.bad[position] = (
                f"{len(review):,} characters, more than predict.max_review_chars = {max_chars:,}"
            )
            reviews.too_long += 1
        if position in reviews.bad:
            print(
                f"error: review {position + 1}: {reviews.bad[position]}; not scored",
                file=sys.stderr,
            )
            continue
        text = clean_text(
            review,
            clean_html=cleaning.clean_html,
            normalize_whitespace=cleaning.normalize_whitespace,
        )
        if not text.strip():
            print(f"error: review {position + 1} is empty; not scored", file=sys.stderr)
            continue
        kept.append(position)
        cleaned.append(text)
    return kept, cleaned
