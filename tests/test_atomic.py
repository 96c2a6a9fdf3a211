"""Atomic writes, what a killed writer leaves behind, and what a write never replaces or
removes: anything the project did not write."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imdb_sentiment.core.atomic import MARKER, OWNER, atomic_path, write_json
from imdb_sentiment.core.errors import StageError

pytestmark = pytest.mark.timeout(120)

WRITER = """
import os, sys, time
from imdb_sentiment.core.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("{half")
    print(tmp, flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), 9)
    time.sleep(60)
"""


def start_writer(final: Path, how: str) -> tuple[subprocess.Popen, Path]:
    """A writer of `final` in another process, inside atomic_path: killed ("die") or still
    writing ("live"); returns it and the private folder it made."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(final), how], stdout=subprocess.PIPE, text=True
    )
    tmp = Path(process.stdout.readline().strip())
    if how == "die":
        process.wait(timeout=60)
    return process, tmp.parent


def test_atomic_path_moves_a_finished_folder_into_place(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_path(final) as tmp:
        assert not tmp.exists() and tmp.name == "out"
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
        assert (final / "old.txt").exists()  # the old output stays until the rename
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_a_written_file_keeps_the_usual_permissions(tmp_path: Path) -> None:
    write_json(tmp_path / "metrics.json", {"accuracy": 1.0})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_next_write_removes_what_a_killed_writer_left_and_nothing_else(tmp_path: Path) -> None:
    final = tmp_path / "metrics.json"
    # The live writer first: starting, it would remove what the killed one left.
    live, live_dir = start_writer(final, "live")
    killed, killed_dir = start_writer(final, "die")
    try:
        assert killed.returncode == -9 and killed_dir.is_dir()
        # Look-alikes the project did not write: a file and a folder named like its
        # temporary copies, a folder whose marker is someone else's, another output's.
        lookalike_file = tmp_path / f".metrics.json.tmp-{killed.pid}"
        lookalike_file.write_text("a user's file")
        lookalike_dir = tmp_path / ".metrics.json.tmp-999999"
        (lookalike_dir / "inside").mkdir(parents=True)
        forged = tmp_path / ".metrics.json.tmp-forged"
        forged.mkdir()
        marker = {"written_by": "someone else", "name": "metrics.json", "pid": killed.pid}
        (forged / MARKER).write_text(json.dumps({**marker, "host": socket.gethostname()}))
        _, other_out = start_writer(tmp_path / "other.json", "die")

        write_json(final, {"accuracy": 1.0})

        assert not killed_dir.exists()  # ours, by its marker, and its writer is gone
        assert live_dir.is_dir()  # a live writer's copy is not ours to remove
        assert lookalike_file.read_text() == "a user's file"
        assert (lookalike_dir / "inside").is_dir()
        assert forged.is_dir() and other_out.is_dir()
        assert final.read_text() == '{\n  "accuracy": 1.0\n}\n'
    finally:
        live.kill()
        live.wait()


def test_a_killed_writer_on_another_machine_is_left_alone(tmp_path: Path) -> None:
    """A shared folder: a PID of another machine says nothing about a process here."""
    final = tmp_path / "metrics.json"
    _, left = start_writer(final, "die")
    marker = json.loads((left / MARKER).read_text())
    (left / MARKER).write_text(json.dumps({**marker, "host": "another-machine"}))
    assert marker["written_by"] == OWNER
    write_json(final, {"accuracy": 1.0})
    assert left.is_dir()


@pytest.mark.parametrize("kind", ["fifo", "fifo-link", "socket", "char-device-link"])
def test_only_a_file_a_folder_or_nothing_is_replaced(tmp_path: Path, kind: str) -> None:
    final = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(final)
    elif kind == "fifo-link":
        os.mkfifo(tmp_path / "pipe")
        final.symlink_to(tmp_path / "pipe")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(final))
        server.close()
    else:
        final.symlink_to("/dev/null")
    before = final.lstat()
    started = time.monotonic()
    refused = r"out\.csv: a (FIFO|socket|character device), not a"
    with pytest.raises(StageError, match=refused), atomic_path(final) as tmp:
        tmp.write_text("new")
    assert time.monotonic() - started < 10  # refused, never opened
    assert final.lstat() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.csv"] + (["pipe"] if kind == "fifo-link" else [])
    )


def test_a_link_to_a_file_is_replaced_as_a_link(tmp_path: Path) -> None:
    """DVC's symlink cache: the output is the link; the file it points at stays."""
    target = tmp_path / "cache-object"
    target.write_text("old")
    final = tmp_path / "out.json"
    final.symlink_to(target)
    write_json(final, {"new": True})
    assert not final.is_symlink() and json.loads(final.read_text()) == {"new": True}
    assert target.read_text() == "old"


def test_a_zombie_writer_counts_as_gone() -> None:
    """A killed writer that nothing has reaped yet still answers signal 0: its folder is
    abandoned all the same."""
    from imdb_sentiment.core import atomic

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        assert not atomic._process_is_alive(child.pid)
    finally:
        child.wait()
    assert atomic._process_is_alive(os.getpid())
