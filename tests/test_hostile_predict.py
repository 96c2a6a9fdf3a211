"""Hostile input to predict and hostile places for its output: bytes that are not UTF-8
in arguments and on stdin, a closed stdin or stdout, an --output that fails, is killed,
or would destroy a folder or the input, terminal control sequences and spreadsheet
formulas in reviews. Bad rows get one `error:` line each and the good rows are still
scored; everything else ends in one `error:` line and exit status 1, and no file outside
the command's own output changes.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import unicodedata
from contextlib import chdir
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import make_reviews, set_params, subprocess_env
from hostile_workspace import (
    REVIEW,
    assert_one_error,
    build_small_workspace,
    call_predict,
    changed,
    error_lines,
    run_predict,
    snapshot,
)

from imdb_sentiment.core.atomic import MARKER, OWNER
from imdb_sentiment.text.cleaning import clean_text

NEGATIVE = "Awful. A boring, dull waste of time; the worst script."


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_small_workspace(tmp_path_factory.mktemp("hostile-predict") / "ws", tiny_model_dir)


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


def jsonl(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


# --- input that is not UTF-8, a closed stdin -------------------------------------------------


@pytest.mark.e2e
def test_bytes_that_are_not_utf8_in_arguments_and_on_stdin(workspace: Path) -> None:
    """Each bad row is one line; the good rows (arguments first, then stdin) are scored."""
    argv = ["--model", "linear", "--format", "jsonl", "--file", "-"]
    arguments = [REVIEW.encode(), b"caf\xe9 au lait, a superb film", NEGATIVE.encode()]
    stdin = b"A superb film.\n\xff\xfe\xfd\nDull and boring.\n\xc3( broken\n"
    before = snapshot(workspace)
    result = run_predict([*argv, *arguments], workspace, input=stdin)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, stderr
    rows = jsonl(result.stdout.decode("utf-8"))
    assert [row["index"] for row in rows] == [1, 3, 4, 6]
    assert [row["review"] for row in rows] == [
        REVIEW,
        NEGATIVE,
        "A superb film.",
        "Dull and boring.",
    ]
    assert error_lines(stderr) == [
        "error: review 2: not UTF-8 (character 4); not scored",
        "error: review 5: not UTF-8 (invalid start byte at byte 0); not scored",
        "error: review 7: not UTF-8 (invalid continuation byte at byte 0); not scored",
        "error: 3 of 7 review(s) unreadable and not scored",
    ]
    assert snapshot(workspace) == before


def test_a_file_whose_name_is_not_utf8_is_read(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = in_workspace / os.fsdecode(b"reviews-\xff.txt")
    path.write_bytes(f"{REVIEW}\n{NEGATIVE}\n".encode())
    try:
        status, out, err = call_predict(["--model", "linear", "--file", str(path)], capsys)
    finally:
        path.unlink()
    assert status == 0, err
    assert len(out.splitlines()) == 3


@pytest.mark.e2e
def test_a_closed_stdin_is_one_line(workspace: Path) -> None:
    before = snapshot(workspace)
    result = run_predict(
        ["--model", "linear"], workspace, stdin=None, preexec_fn=lambda: os.close(0)
    )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert_one_error(stderr, "error: stdin is closed: pass reviews as arguments or with --file")
    assert result.stdout == b""
    assert snapshot(workspace) == before


# --- --output: whole or not at all, never over a folder or the input -------------------------


@pytest.fixture
def previous_results(in_workspace: Path) -> Path:
    """results/scores.csv from an earlier run, and a file of the user's beside it."""
    results = in_workspace / "results"
    results.mkdir(exist_ok=True)
    (results / "scores.csv").write_text("index,label\n1,POSITIVE\n", encoding="utf-8")
    (results / "keep.txt").write_text("mine\n", encoding="utf-8")
    return results / "scores.csv"


def test_output_is_untouched_when_scoring_fails(
    previous_results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> None:
        raise ValueError("scoring failed half-way")

    monkeypatch.setattr("imdb_sentiment.classical.store.pipeline_positive_proba", fail)
    root = previous_results.parents[1]
    before = snapshot(root)
    argv = ["--model", "linear", "--format", "csv", "--output", str(previous_results), REVIEW]
    status, out, err = call_predict(argv, capsys)
    assert status == 1 and out == ""
    assert_one_error(
        err,
        "error: models/linear/model.skops: the model cannot score reviews (ValueError: "
        "scoring failed half-way)",
    )
    assert snapshot(root) == before


def test_output_is_untouched_when_writing_fails(
    previous_results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("imdb_sentiment.core.atomic.os.replace", disk_full)
    root = previous_results.parents[1]
    before = snapshot(root)
    status, _, err = call_predict(
        ["--model", "linear", "--output", str(previous_results), REVIEW], capsys
    )
    assert status == 1
    assert_one_error(
        err, f"error: --output {previous_results}: cannot write (No space left on device)"
    )
    assert snapshot(root) == before  # no half-written temporary file either


def read_until(stream: io.BufferedReader, marker: bytes, timeout: float) -> bytes:
    """What `stream` gives until it holds `marker` (tqdm ends its lines with \\r, so no
    readline), or the timeout passes."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 1)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.e2e
def test_a_kill_while_scoring_leaves_no_output_and_the_next_run_cleans_up(
    previous_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = previous_results.parents[1]
    reviews = root / "many-reviews.txt"
    reviews.write_text("\n".join(make_reviews(20_000, seed=9)["text"]) + "\n", encoding="utf-8")
    before = snapshot(root)
    argv = ["--model", "linear", "--file", str(reviews), "--output", str(previous_results)]
    process = subprocess.Popen(
        [sys.executable, "-m", "imdb_sentiment.cli.predict", *argv],
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        seen = read_until(process.stderr, b"tokens:", timeout=300)
        assert b"tokens:" in seen, seen.decode(errors="replace")
        process.send_signal(signal.SIGKILL)  # while it tokenizes and scores
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert snapshot(root) == before

    # A kill during the final write would leave its private temporary folder (marked as
    # the project's, by the process killed): the next run removes it, since its writer no
    # longer runs, and writes the output whole. A file merely named like one stays.
    leftover = previous_results.with_name(f".{previous_results.name}.tmp-0123456789ab")
    leftover.mkdir()
    (leftover / previous_results.name).write_text("index,label\n1,POS", encoding="utf-8")
    marker = {"written_by": OWNER, "name": previous_results.name, "pid": process.pid}
    (leftover / MARKER).write_text(json.dumps({**marker, "host": socket.gethostname()}))
    lookalike = previous_results.with_name(f".{previous_results.name}.tmp-{process.pid}")
    lookalike.write_text("a user's file, named like a temporary one", encoding="utf-8")
    before = snapshot(root)
    status, _, err = call_predict(
        ["--model", "linear", "--format", "csv", "--output", str(previous_results), REVIEW], capsys
    )
    assert status == 0, err
    assert changed(before, snapshot(root)) == {
        "results/scores.csv",
        *(f"results/{leftover.name}{part}" for part in ("", f"/{MARKER}", "/scores.csv")),
    }
    assert not leftover.exists() and lookalike.exists()
    lines = previous_results.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index,label,score,p_positive,review" and len(lines) == 2


def test_output_never_replaces_a_folder(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = in_workspace / "my-results"
    folder.mkdir(exist_ok=True)
    (folder / "precious.txt").write_text("the user's work\n", encoding="utf-8")
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model", "linear", "--output", str(folder), REVIEW], capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: --output {folder}: is a folder; name a file to write")
    assert snapshot(in_workspace) == before


def test_output_never_replaces_the_input_file(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reviews = in_workspace / "to-score.txt"
    reviews.write_text(f"{REVIEW}\n", encoding="utf-8")
    before = snapshot(in_workspace)
    argv = ["--model", "linear", "--file", "to-score.txt", "--output", str(reviews)]
    status, out, err = call_predict(argv, capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: --output {reviews}: is the --file being read; name another file")
    assert snapshot(in_workspace) == before


def test_output_inside_a_file_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = in_workspace / "notes.txt" / "scores.csv"
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model", "linear", "--output", str(target), REVIEW], capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: --output {target}: cannot write (")
    assert snapshot(in_workspace) == before


def test_a_closed_stdout_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", None)  # how Python starts with file descriptor 1 closed
    before = snapshot(in_workspace)
    status, _, err = call_predict(["--model", "linear", REVIEW], capsys)
    assert status == 1
    assert_one_error(err, "error: stdout is closed: pass --output FILE")
    assert snapshot(in_workspace) == before


def test_a_broken_pipe_on_stdout_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imdb-predict ... | head -0`: the reader is gone before the rows are written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stdout = open(write_end, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    monkeypatch.setattr(sys, "stdout", stdout)
    before = snapshot(in_workspace)
    try:
        status, _, err = call_predict(["--model", "linear", REVIEW], capsys)
    finally:
        stdout.close()  # the descriptor now points at /dev/null: closing it is quiet
    assert status == 1
    assert_one_error(err, "error: cannot write to stdout (Broken pipe)")
    assert snapshot(in_workspace) == before


# --- what a review may hold: terminal control sequences, spreadsheet formulas ---------------

# The explicit directional formatting characters (Unicode's bidi classes).
BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}


def unsafe_on_a_terminal(char: str) -> bool:
    """A control character, a line break or a bidi control (a line feed ends each row)."""
    if char == "\n":
        return False
    category = unicodedata.category(char)
    return category in ("Cc", "Zl", "Zp") or unicodedata.bidirectional(char) in BIDI_CONTROLS


CONTROL_REVIEWS = [
    "\x1b[31mRed alert\x1b[0m, a superb film",
    "\x1b]0;pwned title\x07 a great film",
    "over\rwritten, a dull film",
    "back\x08\x08spaced, a boring film",
    "\u202ereversed\u202c and \u2028 split, a great film",
    "\x9b2J cleared, a superb film",
]


def test_terminal_control_sequences_are_stripped_from_the_table(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call_predict(["--model", "linear", *CONTROL_REVIEWS], capsys)
    assert status == 0, err
    assert out.count("\n") == len(CONTROL_REVIEWS) + 1 == len(out.splitlines())
    assert not [char for char in out if unsafe_on_a_terminal(char)]
    for visible in ("Red alert", "pwned title", "written", "spaced", "reversed", "cleared"):
        assert visible in out
    # JSON lines keep the whole text, escaped.
    status, out, _ = call_predict(
        ["--model", "linear", "--format", "jsonl", *CONTROL_REVIEWS], capsys
    )
    expected = [clean_text(r, clean_html=True, normalize_whitespace=True) for r in CONTROL_REVIEWS]
    assert [row["review"] for row in jsonl(out)] == expected
    assert "\x1b" in expected[0] and "\u202e" in expected[4]


FORMULAS = [
    '=HYPERLINK("http://example.com","click") a superb film',
    "+1+1 a great film",
    "-2+3 a dull film",
    "@SUM(A1:A9) a boring film",
    "=cmd|' /C calc'!A0",
]


def test_spreadsheet_formulas_are_neutralised_in_csv(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = "A plain, superb film."
    status, out, err = call_predict(
        ["--model", "linear", "--format", "csv", *FORMULAS, plain], capsys
    )
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["review"] for row in rows] == [f"'{formula}" for formula in FORMULAS] + [plain]
    for row in rows:
        assert row["label"] in {"POSITIVE", "NEGATIVE"} and float(row["score"]) >= 0.5


# --- an --output that is not a file, a review too long, a column that is not text -----------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fifo", "socket", "link-to-char-device", "link-to-fifo"])
def test_an_output_that_is_not_a_regular_file_is_refused(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Never opened (a FIFO would block), never replaced (as root, a copy of /dev/null or
    /dev/null itself would be): one line, before any review is scored."""
    output = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(output)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(output))
        server.close()
    elif kind == "link-to-char-device":
        output.symlink_to(os.devnull)
    else:
        os.mkfifo(tmp_path / "pipe")
        output.symlink_to(tmp_path / "pipe")

    # What would show a replacement: the entry's inode, kind and last change (not its
    # access time, which a mere look can move).
    def entries() -> list[tuple]:
        stats = [(p.name, p.lstat()) for p in tmp_path.iterdir()]
        return sorted((name, s.st_ino, s.st_mode, s.st_mtime_ns) for name, s in stats)

    before = entries()
    with chdir(workspace):
        status, out, err = call_predict(
            ["--model", "linear", "--output", str(output), REVIEW], capsys
        )
    assert status == 1 and out == ""
    device = {"fifo": "a FIFO", "socket": "a socket", "link-to-fifo": "a FIFO"}
    assert_one_error(
        err,
        f"error: --output {output}: {device.get(kind, 'a character device')}, not a regular "
        "file; the project replaces only files",
    )
    assert entries() == before


def long_review_project(root: Path, workspace: Path, max_chars: int | None) -> Path:
    """A folder with params.yaml (predict.max_review_chars = `max_chars`, else the default)."""
    root.mkdir()
    shutil.copy2(workspace / "params.yaml", root / "params.yaml")
    if max_chars is not None:
        set_params(root / "params.yaml", {"predict.max_review_chars": max_chars})
    return root


@pytest.mark.timeout(120)
def test_a_huge_review_is_reported_and_the_others_scored(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One 50 MB line would take gigabytes and minutes to tokenize: it is counted, named and
    skipped at once (the default cap, far above any real review)."""
    root = long_review_project(tmp_path / "project", workspace, None)
    reviews = root / "reviews.txt"
    huge = "great " * 8_500_000
    reviews.write_text(f"{REVIEW}\n{huge}\n{NEGATIVE}\n", encoding="utf-8")
    argv = ["--model", "linear", "--model-dir", str(workspace / "models/linear"), "--format"]
    argv += ["jsonl", "--tokenizer", str(workspace / "models/distilbert"), "--file", str(reviews)]
    started = time.monotonic()
    with chdir(root):
        status, out, err = call_predict(argv, capsys)
    assert time.monotonic() - started < 60
    assert status == 1
    assert [row["index"] for row in jsonl(out)] == [1, 3]
    assert error_lines(err) == [
        f"error: review 2: {len(huge):,} characters, more than predict.max_review_chars "
        "= 100,000; not scored",
        "error: 1 of 3 review(s) too long and not scored",
    ]


def test_the_cap_is_a_param(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = long_review_project(tmp_path / "project", workspace, 30)
    argv = ["--model", "linear", "--model-dir", str(workspace / "models/linear")]
    argv += ["--tokenizer", str(workspace / "models/distilbert"), "--format", "jsonl"]
    with chdir(root):
        status, out, err = call_predict([*argv, "Superb.", REVIEW, "", "Dull."], capsys)
    assert status == 1
    assert [row["index"] for row in jsonl(out)] == [1, 4]
    assert error_lines(err) == [
        f"error: review 2: {len(REVIEW)} characters, more than predict.max_review_chars = 30; "
        "not scored",
        "error: review 3 is empty; not scored",
        "error: 2 of 4 review(s) empty or too long and not scored",
    ]


def test_a_parquet_column_that_is_not_text_is_refused_or_its_cells_reported(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Numbers are not reviews: never read as the text "30"."""
    numbers = in_workspace / "numbers.parquet"
    pd.DataFrame({"text": [30, 82]}).to_parquet(numbers)
    status, out, err = call_predict(["--model", "linear", "--file", str(numbers)], capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: {numbers}: column 'text' holds int64, not text")
    mixed = in_workspace / "mixed.parquet"
    pq.write_table(pa.table({"text": pa.array([REVIEW.encode(), b"\xff\xfe", b"Dull."])}), mixed)
    frame = pd.DataFrame({"text": pd.Series([REVIEW, 30, None, 2.5], dtype=object)})
    status, out, err = call_predict(
        ["--model", "linear", "--format", "jsonl", "--file", str(mixed)], capsys
    )
    assert status == 1 and [row["index"] for row in jsonl(out)] == [1, 3]
    assert (
        error_lines(err)[0]
        == "error: review 2: not UTF-8 (invalid start byte at byte 0); not scored"
    )
    from imdb_sentiment.text.reviews import Reviews

    reviews = Reviews()
    for value in frame["text"]:
        reviews.add(value)
    assert reviews.bad == {1: "not text (a int)", 3: "not text (a float)"}
    assert reviews.texts[2] == ""  # a missing cell: an empty review, reported as such


def test_control_characters_never_reach_the_csv(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call_predict(
        ["--model", "linear", "--format", "csv", *CONTROL_REVIEWS], capsys
    )
    assert status == 0, err
    assert not [char for char in out if unsafe_on_a_terminal(char)]
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["review"] == " [31mRed alert [0m, a superb film"
    assert rows[5]["review"] == " 2J cleared, a superb film"
