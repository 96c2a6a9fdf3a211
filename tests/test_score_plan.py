"""score without a cluster: what INPUT may be, how it is cut into units, how an output
folder is resumed or refused (each part verified first), how the actor pool is sized,
reviews too long, a cluster address that does not answer, and the one-line errors."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imdb_sentiment.cli import score
from imdb_sentiment.core.atomic import atomic_path
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.scoring import cluster, ray_pool
from imdb_sentiment.scoring import plan as score_plan
from imdb_sentiment.scoring.units import ScoreSettings, score_table, too_long
from imdb_sentiment.text.cleaning import CleaningParams


def write(path: Path, rows: int, row_group_size: int | None = None, **columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": range(rows), "text": [f"review {i}" for i in range(rows)]})
    for name, values in columns.items():
        frame[name] = values
    frame.to_parquet(path, index=False, row_group_size=row_group_size)
    return path


def test_input_is_a_file_a_folder_or_a_glob(tmp_path: Path) -> None:
    a = write(tmp_path / "in" / "a.parquet", 3)
    b = write(tmp_path / "in" / "sub" / "b.parquet", 3)
    write(tmp_path / "in" / "_hidden" / "c.parquet", 3)
    write(tmp_path / "in" / ".tmp.parquet", 3)
    (tmp_path / "in" / "notes.txt").write_text("not data")
    assert score_plan.list_input_files(str(a)) == [a]
    assert score_plan.list_input_files(str(tmp_path / "in")) == [a, b]
    # A glob takes what it matches (Python's glob leaves out names starting with a dot).
    c = tmp_path / "in" / "_hidden" / "c.parquet"
    assert score_plan.list_input_files(str(tmp_path / "in" / "**" / "*.parquet")) == [c, a, b]
    assert score_plan.list_input_files(str(tmp_path / "in" / "*.parquet")) == [a]
    with pytest.raises(StageError, match="nowhere: no such file or folder"):
        score_plan.list_input_files(str(tmp_path / "nowhere"))
    with pytest.raises(StageError, match="no Parquet files there"):
        score_plan.list_input_files(str(tmp_path / "in" / "*.csv"))


@pytest.mark.parametrize(
    ("row_groups", "rows_per_file", "expected"),
    [
        ([100], 100, [(0, 100)]),
        ([100], 40, [(0, 33), (33, 66), (66, 100)]),  # one big row group: equal slices
        ([30, 30, 30, 30], 60, [(0, 60), (60, 120)]),  # whole row groups together
        ([30, 30, 30], 50, [(0, 30), (30, 60), (60, 90)]),
        ([10, 100, 10], 50, [(0, 10), (10, 60), (60, 110), (110, 120)]),
        ([], 10, []),
    ],
)
def test_units_follow_row_groups(row_groups: list[int], rows_per_file: int, expected) -> None:
    assert list(score_plan._file_units(Path("f"), row_groups, rows_per_file)) == expected


def test_read_unit_returns_exactly_its_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", 10_000, row_group_size=3_000)
    plan = score_plan.make_plan([path], 2_500, {})
    units = score_plan.plan_units(plan)
    assert [(u.start, u.stop) for u in units] == [
        (0, 1500), (1500, 3000), (3000, 4500), (4500, 6000), (6000, 7500), (7500, 9000),
        (9000, 10000),
    ]  # fmt: skip
    ids = [i for unit in units for i in score_plan.read_unit(unit).column("id").to_pylist()]
    assert ids == list(range(10_000))


def test_schemas_must_agree_and_hold_text(tmp_path: Path) -> None:
    a = write(tmp_path / "a.parquet", 2, label=[0, 1], score=[0.5, 0.5])
    schema = score_plan.check_schemas([a])
    names = [score_plan.output_name(c) for c in score_plan.id_columns(schema)]
    assert names == ["id", "input_label", "input_score"]  # the output's own columns win
    b = write(tmp_path / "b.parquet", 2)
    with pytest.raises(StageError, match="b.parquet: its columns differ from"):
        score_plan.check_schemas([a, b])
    c = tmp_path / "c.parquet"
    pq.write_table(pa.table({"review": ["x"]}), c)
    with pytest.raises(StageError, match="c.parquet: no column 'text'; it has \\['review'\\]"):
        score_plan.check_schemas([c])
    d = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), d)
    with pytest.raises(StageError, match="column 'text' holds int64, not strings"):
        score_plan.check_schemas([d])
    e = write(tmp_path / "e.parquet", 1, label=[1], input_label=[1])
    with pytest.raises(StageError, match="columns \\['input_label'\\] would clash"):
        score_plan.check_schemas([e])


def test_output_folder_is_resumed_only_for_the_same_plan(tmp_path: Path) -> None:
    path = write(tmp_path / "a.parquet", 100, row_group_size=25)
    plan = score_plan.make_plan([path], 50, {"model": "linear"})
    out = tmp_path / "out"
    assert score_plan.open_output(out, plan) == set()
    units = score_plan.plan_units(plan)
    scores = pa.table({"label": [1] * 50, "score": [0.9] * 50})
    score_plan.write_unit(out, units[1], scores, score_plan.plan_digest(plan))
    assert score_plan.open_output(out, plan) == {1}
    other = score_plan.make_plan([path], 25, {"model": "linear"})
    with pytest.raises(StageError, match="holds the scores of another run \\(rows_per_file, units"):
        score_plan.open_output(out, other)
    other_model = score_plan.make_plan([path], 50, {"model": "rf"})
    with pytest.raises(StageError, match="another run \\(model differ\\)"):
        score_plan.open_output(out, other_model)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(StageError, match="busy: not empty and not a score output"):
        score_plan.open_output(busy, plan)


def test_written_unit_is_atomic_and_leftovers_go(tmp_path: Path) -> None:
    unit = score_plan.Unit(3, "in.parquet", 0, 2)
    # What a killed writer of another part left (its marked private folder), and a file
    # merely named like one, which is not the project's to remove.
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "part-000007.parquet") as tmp:
        tmp.write_bytes(b"killed writer")
        left = tmp.parent
        shutil.copytree(left, tmp_path / "copy")  # as the kill would have left it
        raise KeyboardInterrupt
    (tmp_path / "copy").rename(left)
    (tmp_path / ".part-000008.parquet.tmp-999999999").write_bytes(b"a user's file")
    digest = "d" * 64
    score_plan.write_unit(tmp_path, unit, pa.table({"label": [1, 0], "score": [0.9, 0.1]}), digest)
    written = pq.read_table(tmp_path / "part-000003.parquet")
    assert written.column("score").to_pylist() == [0.9, 0.1]
    assert written.schema.metadata[b"imdb_score.rows"] == b"0:2"
    assert written.schema.metadata[b"imdb_score.plan"] == digest.encode()
    score_plan.remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".part-000008.parquet.tmp-999999999",
        "part-000003.parquet",
    ]


@pytest.mark.parametrize(
    ("cpus", "gpus", "use_gpu", "workers", "expected"),
    [
        (2, 0, False, None, ray_pool.Pool(2, 1.0, 0)),
        (200, 0, False, None, ray_pool.Pool(200, 1.0, 0)),
        (1, 0, False, None, ray_pool.Pool(1, 1.0, 0)),
        (8, 0, False, 2, ray_pool.Pool(2, 1.0, 0)),
        (2, 0, False, 3, ray_pool.Pool(3, 0.5, 0)),  # two per core, as on 1-core nodes
        (16, 4, True, None, ray_pool.Pool(4, 1.0, 1)),
        (4, 8, True, None, ray_pool.Pool(8, 0.5, 1)),
    ],
)
def test_the_actor_pool_fits_the_cluster(
    cpus: int, gpus: int, use_gpu: bool, workers: int | None, expected: ray_pool.Pool
) -> None:
    pool = ray_pool.size_pool(cpus, gpus, use_gpu, workers)
    assert pool == expected
    # The actors never book more CPUs than there are, and a fraction always divides a core.
    assert pool.workers * pool.actor_cpus <= cpus
    assert (1 / pool.actor_cpus) == int(1 / pool.actor_cpus)


def test_more_gpu_workers_than_gpus_is_one_line() -> None:
    with pytest.raises(StageError, match="--workers 3: the cluster has 2 GPUs"):
        ray_pool.size_pool(8, 2, True, 3)


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        score.main(list(argv))
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert out == ""
    return err.strip().splitlines()[-1]


def test_without_ray_it_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    line = call(capsys, str(write(tmp_path / "a.parquet", 2)), "--output", str(tmp_path / "o"))
    assert line == (
        "error: score runs on Ray Data, which is not installed: pip install "
        "'imdb-sentiment[scale]' (in a checkout: pip install -e '.[scale]')"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rows-per-file", "0"], "error: --rows-per-file 0: must be at least 1"),
        (["--workers", "0"], "error: --workers 0: must be at least 1"),
        (["--device", "tpu"], "error: --device tpu: must be auto, cpu or cuda"),
    ],
)
def test_bad_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    line = call(capsys, "in.parquet", "--output", str(tmp_path / "o"), *argv)
    assert line == message


def test_missing_model_and_input_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "a.parquet", 2)
    line = call(capsys, str(path), "--model", "linear", "--output", "o")
    assert line.startswith(f"error: {tmp_path / 'models' / 'linear'}: no such model folder")
    (tmp_path / "models" / "linear").mkdir(parents=True)
    (tmp_path / "models" / "linear" / "model.skops").write_bytes(b"")
    line = call(
        capsys, "nothing-*.parquet", "--model", "linear", "--output", "o", "--tokenizer", "t"
    )
    assert line == "error: nothing-*.parquet: no Parquet files there"
    line = call(capsys, str(path), "--model", "linear", "--output", "o", "--tokenizer", "./none")
    assert line == f"error: --tokenizer={str(tmp_path / 'none')!r}: no such folder", line


# --- resume verifies each part; reviews too long; a worker's failure; waits that end -------


def written_output(tmp_path: Path) -> tuple[Path, dict, list]:
    """An output folder holding the plan of 100 rows in 4 units, every part written."""
    path = write(tmp_path / "a.parquet", 100, row_group_size=25)
    plan = score_plan.make_plan([path], 25, {"model": "linear"})
    out = tmp_path / "out"
    score_plan.open_output(out, plan)
    units = score_plan.plan_units(plan)
    for unit in units:
        table = pa.table({"id": range(unit.start, unit.stop), "label": [1] * 25})
        table = table.append_column("score", pa.array([0.75] * 25))
        score_plan.write_unit(out, unit, table, score_plan.plan_digest(plan))
    return out, plan, units


def test_every_part_is_verified_before_a_resume_trusts_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, plan, units = written_output(tmp_path)
    assert score_plan.open_output(out, plan) == {0, 1, 2, 3}
    part = [out / unit.file_name for unit in units]
    whole = part[0].read_bytes()
    part[0].write_bytes(whole[: len(whole) // 2])  # cut short
    shutil.copy2(part[2], part[1])  # another unit's part, whole and valid
    flipped = bytearray(part[3].read_bytes())
    flipped[len(flipped) // 3] ^= 0xFF  # one byte of its data changed
    part[3].write_bytes(bytes(flipped))
    assert score_plan.open_output(out, plan) == {2}
    warnings = [record.getMessage() for record in caplog.records]
    assert any("part-000000.parquet: not a readable Parquet file" in w for w in warnings)
    assert any("part-000001.parquet: its metadata (imdb_score.rows)" in w for w in warnings)
    assert any(w.startswith(f"{part[3]}: ") and "scoring unit 3 again" in w for w in warnings)


def test_a_part_of_another_plan_or_with_rows_removed_is_not_trusted(tmp_path: Path) -> None:
    out, plan, units = written_output(tmp_path)
    other = {**plan, "model": "rf"}
    table = pq.read_table(out / units[0].file_name)
    score_plan.write_unit(out, units[0], table, score_plan.plan_digest(other))
    short = pq.read_table(out / units[1].file_name)
    metadata = short.schema.metadata
    pq.write_table(short.slice(0, 20).replace_schema_metadata(metadata), out / units[1].file_name)
    assert score_plan.open_output(out, plan) == {2, 3}


@pytest.mark.timeout(60)
def test_a_part_that_is_a_fifo_is_one_line_never_a_hang(tmp_path: Path) -> None:
    out, plan, units = written_output(tmp_path)
    (out / units[2].file_name).unlink()
    os.mkfifo(out / units[2].file_name)
    with pytest.raises(StageError, match="part-000002.parquet: a FIFO, not a regular file"):
        score_plan.open_output(out, plan)


def test_a_review_too_long_is_not_scored_and_counted() -> None:
    settings = ScoreSettings("linear", "torch", "m", None, 8, "cpu", CleaningParams(), 30)
    table = pa.table({"id": [1, 2, 3, 4], "text": ["Superb.", "x" * 31, None, "é" * 30]})
    seen: list[list[str]] = []

    def proba(texts: list[str]) -> np.ndarray:
        seen.append(texts)
        return np.full(len(texts), 0.9)

    scored = score_table(table, settings, proba)
    assert seen == [["Superb.", "é" * 30]]  # characters, not bytes
    assert scored.column("score").to_pylist() == [0.9, None, None, 0.9]
    assert too_long(table, 30).tolist() == [False, True, False, False]


def test_a_workers_failure_is_its_own_error_line() -> None:
    """Ray passes a worker's exception on as text, behind its own wrappers and colours."""
    from ray.exceptions import RayActorError

    trace = (
        "The actor died because of an error raised in its creation task, \x1b[36mray::"
        "MapWorker(MapBatches(UnitScorer)).__init__()\x1b[39m (pid=1, ip=127.0.0.2)\n"
        '  File "loading.py", line 80, in _load\n    raise StageError(\n'
        "imdb_sentiment.core.errors.StageError: /m: cannot load the model (OSError: no file)"
    )
    died = RayActorError(error_msg=trace, actor_init_failed=True)
    died.__cause__ = RuntimeError("")  # Ray Data's empty SystemException
    assert ray_pool.worker_failure(died) == "/m: cannot load the model (OSError: no file)"
    other = RuntimeError("first line\n\x1b[31mMemoryError: out of memory\x1b[0m\n")
    assert ray_pool.worker_failure(other) == "RuntimeError: MemoryError: out of memory"


def silent_server() -> tuple[socket.socket, str]:
    """A TCP port that accepts and never answers (as a firewall or a stuck server does)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, f"127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.timeout(60)
def test_a_cluster_address_that_does_not_answer_is_one_line_in_time() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    started = time.monotonic()
    with pytest.raises(StageError, match=rf"--address 127\.0\.0\.1:{port}: cannot connect"):
        cluster.wait_for_cluster(f"127.0.0.1:{port}", 2)
    with pytest.raises(StageError, match=rf"ray://127\.0\.0\.1:{port}: cannot connect"):
        cluster.wait_for_cluster(f"ray://127.0.0.1:{port}", 2)
    server, address = silent_server()
    with server, pytest.raises(StageError, match="no answer within 2 s"):
        cluster.wait_for_cluster(address, 2)
    assert time.monotonic() - started < 10


def test_a_server_that_is_not_ray_is_one_line() -> None:
    server, address = silent_server()

    def answer() -> None:
        connection, _ = server.accept()
        connection.recv(64)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with server, pytest.raises(StageError, match="what answers there is not a Ray cluster"):
        cluster.wait_for_cluster(address, 5)
    thread.join(5)


@pytest.mark.timeout(120)
def test_ray_address_that_does_not_answer_ends_score_in_one_line(
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole command, with its timeout from params.yaml: Ray's own retries would wait
    for many minutes."""
    from evaluate_workspace import tiny_classical_pipeline
    from helpers import make_reviews

    from imdb_sentiment.classical.store import save_classical_model

    monkeypatch.chdir(tmp_path)
    train = make_reviews(40).assign(tokens=lambda frame: frame["text"].str.lower())
    pipeline = tiny_classical_pipeline("linear").fit(train[["text", "tokens"]], train["label"])
    save_classical_model(pipeline, tmp_path / "models" / "linear")
    server, address = silent_server()
    monkeypatch.setenv("RAY_ADDRESS", address)
    (tmp_path / "params.yaml").write_text("score:\n  connect_timeout_s: 1.5\n")
    data = str(write(tmp_path / "a.parquet", 4))
    argv = [data, "--model", "linear", "--tokenizer", str(tiny_model_dir), "--output", "o"]
    started = time.monotonic()
    with server:
        line = call(capsys, *argv)
    assert line == f"error: --address {address}: no answer within 1.5 s (score.connect_timeout_s)"
    assert time.monotonic() - started < 60
