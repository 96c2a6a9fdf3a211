"""Atomic writes, and what a killed writer leaves behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imdb_sentiment.core.atomic import atomic_path, write_json


def test_atomic_path_moves_a_finished_folder_into_place(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_path(final) as tmp:
        assert not tmp.exists()
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


def test_next_write_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        abandoned = tmp_path / f".metrics.json.tmp-{dead.pid}"
        abandoned.write_text("{half")
        abandoned_dir = tmp_path / f".metrics.json.tmp-{2**22 + 1}"
        abandoned_dir.mkdir()  # no such PID: above Linux's largest pid_max
        in_progress = tmp_path / f".metrics.json.tmp-{alive.pid}"
        in_progress.write_text("{being written")
        other_out = tmp_path / f".other.json.tmp-{dead.pid}"
        other_out.write_text("{another output's")

        write_json(tmp_path / "metrics.json", {"accuracy": 1.0})

        assert not abandoned.exists()
        assert not abandoned_dir.exists()
        assert in_progress.exists()  # a live writer's copy is not ours to remove
        assert other_out.exists()  # only the siblings of the output being written
        assert (tmp_path / "metrics.json").read_text() == '{\n  "accuracy": 1.0\n}\n'
    finally:
        alive.kill()
        alive.wait()
