"""score on a real two-node Ray cluster on loopback (a head and one more node, one CPU
each, started and stopped here, shared by every test of this module): predictions equal
the predict command's in one process, both nodes score, every model kind works, a SIGKILLed
run resumes to the same files, bad rows are counted and named."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluate_workspace import fine_tune
from helpers import make_review, make_reviews, subprocess_env

from imdb_sentiment.classical.forest import RFParams
from imdb_sentiment.classical.forest import build_pipeline as rf_pipeline
from imdb_sentiment.classical.linear import LinearParams
from imdb_sentiment.classical.linear import build_pipeline as linear_pipeline
from imdb_sentiment.classical.store import save_classical_model
from imdb_sentiment.inference import onnx_export
from imdb_sentiment.inference.onnx_export import ExportParams
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.text.cleaning import CleaningParams
from imdb_sentiment.text.cutting import CutParams
from imdb_sentiment.text.reviews import Reviews, clean_reviews
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer

# Slow (real clusters and subprocesses): left out by `pytest -m "not e2e"`.
pytestmark = pytest.mark.e2e

RAY = Path(sys.executable).parent / "ray"
# Ray turns 127.0.0.1 into the machine's network address; another loopback address it
# keeps, so the cluster's traffic stays on loopback.
NODE_IP = "127.0.0.2"
# The cluster's own token (Ray's token authentication): no token of this machine is used.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
ROWS_PER_FILE = 25  # 16 parts of the 400 reviews (row groups of 50: two parts each)
# (file, row) of the reviews that cannot be scored: null, empty, blanks, only markup.
BAD = {("a.parquet", 3): None, ("a.parquet", 50): "", ("a.parquet", 51): "   "}
BAD[("b.parquet", 7)] = "<br /><br />"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((NODE_IP, 0))
        return sock.getsockname()[1]


def kill_processes_mentioning(marker: str) -> None:
    """Kill, by PID, the processes whose command line holds `marker` (this module's own
    Ray temp dir): what is left of the nodes started here, and nothing else."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            # Another user's process may hold bytes that are not UTF-8.
            cmdline = raw.decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def start_node(temp: Path, log: Path, *args: str) -> subprocess.Popen:
    """`ray start --block`: the node lives as long as this process, which stops it on exit."""
    command = [str(RAY), "start", "--block", "--num-cpus", "1", "--num-gpus", "0"]
    command += ["--node-ip-address", NODE_IP, "--temp-dir", str(temp)]
    command += ["--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"]
    with open(log, "w") as handle:
        return subprocess.Popen(
            [*command, *args],
            env=cluster_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def cluster_env(address: str | None = None) -> dict[str, str]:
    """The environment of the nodes and of the commands run on the cluster."""
    return {**subprocess_env(), **RAY_ENV, **({"RAY_ADDRESS": address} if address else {})}


def cluster_cpus(address: str) -> float:
    probe = "import ray; ray.init(); print(ray.cluster_resources().get('CPU', 0))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=cluster_env(address),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return float(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else 0.0


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    # Short: Ray's socket paths under it must stay within the 107-byte limit.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    nodes = [start_node(temp, temp / "head.log", "--head", "--port", str(port))]
    address = f"{NODE_IP}:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (temp / "head.log").read_text().count("Ray runtime started"):
            assert nodes[0].poll() is None, (temp / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the head node did not start"
            time.sleep(0.5)
        nodes.append(start_node(temp, temp / "node.log", "--address", address))
        while cluster_cpus(address) < 2:
            assert nodes[1].poll() is None, (temp / "node.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(1)
        yield address
    finally:
        # `ray start --block` stops its node on SIGTERM; what has not gone within a few
        # seconds is killed (these nodes hold nothing worth a clean shutdown).
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        kill_processes_mentioning(str(temp))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Two files of synthetic reviews (ids and a date kept as columns), row groups of 50,
    some long enough to be cut, four that cannot be scored, and the three tiny models."""
    root = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(0)
    long_rng = random.Random(3)
    for name, rows in (("a.parquet", 300), ("b.parquet", 100)):
        texts: list[str | None] = make_reviews(rows, seed=len(name) + rows)["text"].tolist()
        for i in range(0, rows, 9):
            texts[i] = make_review(i % 2, long_rng, n_words=90)
        for (file, row), bad in BAD.items():
            if file == name:
                texts[row] = bad
        frame = pd.DataFrame(
            {
                "review_id": [f"{name[0]}{i:04d}" for i in range(rows)],
                "text": texts,
                "day": pd.to_datetime("2024-01-01")
                + pd.to_timedelta(rng.integers(0, 99, rows), "D"),
            }
        )
        (root / "input").mkdir(exist_ok=True)
        frame.to_parquet(root / "input" / name, index=False, row_group_size=50)

    models = root / "models"
    train = make_reviews(240, seed=77)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    train["tokens"] = tokenize_texts(train["text"].tolist(), tokenizer, CutParams())["tokens"]
    # DistilBERT: the tiny model, briefly trained so that its scores spread out, cut as
    # its tokenize_config.json says (64 tokens, head + tail).
    cut = CutParams(max_length=64, truncation="head_tail", head_tokens=16)
    shutil.copytree(tiny_model_dir, models / "distilbert")
    ids = tokenize_texts(train["text"].tolist(), tokenizer, cut)["input_ids"]
    fine_tune(tiny_model_dir, models / "distilbert", ids, train["label"].tolist())
    (models / "distilbert" / "tokenize_config.json").write_text(cut.model_dump_json())
    pipelines = {
        "linear": linear_pipeline(LinearParams(min_df=2, n_jobs=1), seed=0),
        "rf": rf_pipeline(
            RFParams(column="tokens", select_k=100, n_estimators=30, n_jobs=2, verbose=0), seed=0
        ),
    }
    for kind, pipeline in pipelines.items():
        pipeline.fit(train[["text", "tokens"]], train["label"])
        save_classical_model(pipeline, models / kind)
    return root


def score_command(corpus: Path, kind: str, out: Path, backend: str = "torch") -> list[str]:
    return [
        sys.executable, "-m", "imdb_sentiment.cli.score", str(corpus / "input"), "--model", kind,
        "--backend", backend, "--models-dir", str(corpus / "models"),
        "--tokenizer", str(corpus / "models/distilbert"),
        "--output", str(out), "--rows-per-file", str(ROWS_PER_FILE), "--batch-size", "16",
    ]  # fmt: skip


def run_score(
    corpus: Path, kind: str, out: Path, address: str, backend: str = "torch"
) -> tuple[dict, str]:
    """Run the score command on the cluster (from a folder with no params.yaml: the default
    cleaning); return its JSON summary and its stderr."""
    result = subprocess.run(
        score_command(corpus, kind, out, backend),
        cwd=corpus,
        env=cluster_env(address),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def read_scores(out: Path) -> pd.DataFrame:
    parts = sorted(out.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(path) for path in parts], ignore_index=True)


def expected_scores(corpus: Path, kind: str, backend: str = "torch") -> pd.DataFrame:
    """What the predict command's code gives, in this one process: the reviews cleaned by
    clean_reviews, scored by load_scorer's scorer of the model and backend."""
    frames = [pd.read_parquet(path) for path in sorted((corpus / "input").glob("*.parquet"))]
    reviews = pd.concat(frames, ignore_index=True)
    texts = ["" if pd.isna(text) else text for text in reviews["text"]]  # as predict reads
    positions, cleaned = clean_reviews(Reviews(texts=list(texts)), CleaningParams())
    model_dir = corpus / "models" / kind
    if backend == "onnx-int8":
        model_dir = corpus / "models/distilbert-onnx"
    tokenizer = str(corpus / "models/distilbert")
    proba = load_scorer(kind, backend, model_dir, batch_size=16, tokenizer=tokenizer).proba(cleaned)
    kept = reviews.iloc[positions].drop(columns="text").reset_index(drop=True)
    return kept.assign(label=(proba >= 0.5).astype("int64"), score=proba)


@pytest.fixture(scope="module")
def linear_run(corpus: Path, ray_address: str) -> tuple[Path, dict, str]:
    out = corpus / "scores-linear"
    summary, stderr = run_score(corpus, "linear", out, ray_address)
    return out, summary, stderr


def test_two_nodes_score_what_one_process_predicts(linear_run, corpus: Path) -> None:
    out, summary, _ = linear_run
    assert summary["workers"] == 2  # both nodes' actors scored units
    assert summary["rows"] == 400 and summary["bad_rows"] == len(BAD)
    assert summary["files_written"] == 400 // ROWS_PER_FILE and summary["files_skipped"] == 0
    got = read_scores(out)
    expected = expected_scores(corpus, "linear")
    assert list(got.columns) == ["review_id", "day", "label", "score"]
    assert got["label"].dtype == "int64" and got["score"].dtype == "float64"
    pd.testing.assert_frame_equal(got, expected)  # identical, float for float


def test_bad_rows_are_counted_and_named(linear_run, corpus: Path) -> None:
    out, summary, stderr = linear_run
    assert summary["bad_rows"] == 4
    warnings = [line for line in stderr.splitlines() if "not scored" in line]
    # One line per unit with bad rows; rows counted from 1 within their file.
    assert len(warnings) == 3, warnings
    assert any(f"{corpus}/input/a.parquet: 1 review(s)" in w and "(rows 4)" in w for w in warnings)
    assert any("a.parquet: 2 review(s)" in w and "(rows 51, 52)" in w for w in warnings)
    assert any("b.parquet: 1 review(s)" in w and "(rows 8)" in w for w in warnings)
    ids = set(read_scores(out)["review_id"])
    assert {"a0003", "a0050", "a0051", "b0007"}.isdisjoint(ids) and len(ids) == 396


@pytest.mark.parametrize("kind", ["distilbert", "rf"])
def test_every_model_kind_matches_predict(corpus: Path, ray_address: str, kind: str) -> None:
    out = corpus / f"scores-{kind}"
    summary, _ = run_score(corpus, kind, out, ray_address)
    assert summary["rows"] == 400 and summary["bad_rows"] == 4
    got = read_scores(out)
    expected = expected_scores(corpus, kind)
    pd.testing.assert_frame_equal(got.drop(columns="score"), expected.drop(columns="score"))
    # predict's DistilBERT runs a transformers pipeline, score the project's batched
    # inference (inference.torch_backend); the forest sums its trees in another thread order.
    tolerance = 2e-6 if kind == "distilbert" else 1e-12
    np.testing.assert_allclose(got["score"], expected["score"], rtol=0, atol=tolerance)
    assert got["score"].std() > 0.01  # the models say different things about different reviews


def test_the_int8_onnx_backend_scores_as_predict_does(corpus: Path, ray_address: str) -> None:
    models = corpus / "models"
    onnx_export.export(models / "distilbert", models / "distilbert-onnx", ExportParams())
    out = corpus / "scores-onnx-int8"
    summary, _ = run_score(corpus, "distilbert", out, ray_address, backend="onnx-int8")
    assert summary["rows"] == 400 and summary["bad_rows"] == 4
    got = read_scores(out)
    expected = expected_scores(corpus, "distilbert", backend="onnx-int8")
    pd.testing.assert_frame_equal(
        got.drop(columns=["label", "score"]), expected.drop(columns=["label", "score"])
    )
    # Dynamic int8 quantises each batch's activations with a scale of their own, and score
    # batches each unit apart: close, not equal, to predict's one pass over all the reviews
    # (measured: scores up to 0.053 apart, labels equal on 99-100% of the reviews).
    assert (got["label"] == expected["label"]).mean() >= 0.98
    np.testing.assert_allclose(got["score"], expected["score"], rtol=0, atol=0.06)


def test_killed_run_resumes_to_the_same_files(linear_run, corpus: Path, ray_address: str) -> None:
    reference, _, _ = linear_run
    out = corpus / "scores-killed"
    env = cluster_env(ray_address)
    log = corpus / "killed.log"
    with open(log, "w") as handle:
        run = subprocess.Popen(
            score_command(corpus, "linear", out), cwd=corpus, env=env, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(out.glob("part-*.parquet")):
        assert run.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no part file written"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the driver, as a preempted machine would lose it
    run.wait()
    time.sleep(2)  # tasks of the dead driver that were writing finish or are stopped
    written = {path.name for path in out.glob("part-*.parquet")}
    assert 0 < len(written) < 400 // ROWS_PER_FILE, "the kill came after the last file"
    before = {name: (out / name).stat().st_mtime_ns for name in written}

    summary, _ = run_score(corpus, "linear", out, ray_address)
    assert summary["files_skipped"] == len(written)
    assert summary["files_written"] == 400 // ROWS_PER_FILE - len(written)
    assert {name: (out / name).stat().st_mtime_ns for name in written} == before  # not redone
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for path in reference.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


# --- what a run trusts, and what ends it in one line ------------------------------------------


def error_of(result: subprocess.CompletedProcess[str]) -> str:
    """The run's one `error:` line (and no traceback)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_tampered_parts_are_scored_again_to_the_same_files(
    linear_run, corpus: Path, ray_address: str
) -> None:
    reference, _, _ = linear_run
    out = corpus / "scores-tampered"
    shutil.copytree(reference, out)
    parts = sorted(out.glob("part-*.parquet"))
    parts[0].write_bytes(parts[0].read_bytes()[:100])  # cut short
    parts[1].write_bytes(b"garbage")
    shutil.copy2(parts[3], parts[2])  # another unit's part
    summary, stderr = run_score(corpus, "linear", out, ray_address)
    assert summary["files_written"] == 3 and summary["files_skipped"] == len(parts) - 3
    assert stderr.count("scoring unit") == 3
    for path in reference.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name


def weightless_models_command(corpus: Path, name: str) -> tuple[Path, list[str]]:
    """A copy of the models with no weights (`corpus/models-NAME`), and the command that
    scores DistilBERT from it into `corpus/scores-NAME`."""
    models = corpus / f"models-{name}"
    shutil.copytree(corpus / "models", models, ignore=shutil.ignore_patterns("*.safetensors"))
    command = score_command(corpus, "distilbert", corpus / f"scores-{name}")
    command[command.index("--models-dir") + 1] = str(models)
    return models, command


def test_a_model_folder_without_weights_is_one_line_before_any_work(
    corpus: Path, ray_address: str
) -> None:
    models, command = weightless_models_command(corpus, "no-weights")
    result = subprocess.run(
        command, cwd=corpus, env=cluster_env(ray_address), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    line = error_of(result)
    assert line.startswith(f"error: {models / 'distilbert'}: cannot load the model (")
    assert not (corpus / "scores-no-weights").exists()


# The driver's check left out, as if the folder broke after it: the workers fail to start.
WITHOUT_DRIVER_CHECK = (
    "import sys; import imdb_sentiment.scoring.run as run; "
    "run.check_scores_here = lambda *args: None; "
    "from imdb_sentiment.cli.score import main; main(sys.argv[1:])"
)


def test_workers_that_cannot_start_end_the_run_in_one_line_naming_the_folder(
    corpus: Path, ray_address: str
) -> None:
    models, command = weightless_models_command(corpus, "workers-fail")
    command[1:3] = ["-c", WITHOUT_DRIVER_CHECK]
    result = subprocess.run(
        command, cwd=corpus, env=cluster_env(ray_address), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    line = error_of(result)
    folder = models / "distilbert"
    assert line.startswith(f"error: a scoring worker of {folder} failed: {folder}: cannot load")
    assert len(result.stderr.splitlines()) < 30, result.stderr


def test_ray_started_here_keeps_to_loopback(tmp_path: Path) -> None:
    """Without an address, score starts Ray registered under a loopback address."""
    probe = (
        "from imdb_sentiment.scoring.cluster import connect; connect(None); import ray; "
        "print(sorted({node['NodeManagerAddress'] for node in ray.nodes()})); ray.shutdown()"
    )
    env = {key: value for key, value in cluster_env().items() if key != "RAY_ADDRESS"}
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths
    try:
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=tmp_path, env={**env, "RAY_TMPDIR": str(temp)},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        kill_processes_mentioning(str(temp))
        shutil.rmtree(temp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['127.0.0.2']"
