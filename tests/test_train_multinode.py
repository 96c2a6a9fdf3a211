"""train_distilbert on two "machines": two torchrun agents, one process each, meeting at a
c10d rendezvous on loopback, each in its own project folder (as two machines with their own
checkout and `dvc pull`ed data) and a shared checkpoint folder (as a shared filesystem).
They train the tiny model together; only global rank 0 writes the outs; the run follows a
one-process run with the same effective batch (2 x 8 against 1 x 16)."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from evaluate_workspace import chdir
from helpers import (
    PROJECT_ROOT,
    TINY_PARAMS,
    build_tiny_model,
    make_reviews,
    set_params,
    subprocess_env,
    write_aclimdb,
)

from imdb_sentiment.stages import prepare, tokenize

# Slow (real clusters and subprocesses): left out by `pytest -m "not e2e"`.
pytestmark = pytest.mark.e2e

# 200 reviews -> 160 train / 40 validation: 10 steps of 16 per epoch, no partial batch
# (the last, partial batch is where a split between processes could differ). 10 epochs:
# the tiny model needs about 100 steps to leave chance.
SETTINGS = {
    **TINY_PARAMS,
    "prepare.validation_size": 0.2,
    "train_distilbert.num_train_epochs": 10,
    "train_distilbert.logging_steps": 5,
}
OUTS = (
    "models/distilbert",
    "metrics/validation/distilbert.json",
    "summaries/train_distilbert.json",
    "dvclive/train_distilbert",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three project folders with the same tokenized data: `single` (one process, batch
    16) and `node0` / `node1` (batch 8 each), sharing one checkpoint folder."""
    root = tmp_path_factory.mktemp("multinode")
    # Without dropout, one process over 16 reviews and two over 8 each compute the same
    # gradients: the random masks would otherwise differ between the two layouts.
    model = build_tiny_model(root / "model", make_reviews(200, seed=123)["text"].tolist())
    config = json.loads((model / "config.json").read_text())
    config.update(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    (model / "config.json").write_text(json.dumps(config))
    source = write_aclimdb(root / "raw", n_train=200, n_test=16)
    shared_checkpoints = root / "shared-fs" / "checkpoints"
    folders = {}
    for name, batch in (("single", 16), ("node0", 8), ("node1", 8)):
        folder = root / name
        folder.mkdir()
        shutil.copy2(PROJECT_ROOT / "params.yaml", folder / "params.yaml")
        settings = {
            **SETTINGS,
            "data.source": str(source),
            "model.name": str(model),
            "train_distilbert.per_device_train_batch_size": batch,
        }
        if name != "single":
            settings["train_distilbert.output_dir"] = str(shared_checkpoints)
        set_params(folder / "params.yaml", settings)
        folders[name] = folder
    with chdir(folders["single"]):
        prepare.main()
        tokenize.main()
    for name in ("node0", "node1"):  # each machine pulls the same data
        shutil.copytree(folders["single"] / "data", folders[name] / "data")
    folders["checkpoints"] = shared_checkpoints
    return folders


def env() -> dict[str, str]:
    return {**subprocess_env(), "OMP_NUM_THREADS": "1"}


def metrics(folder: Path) -> dict:
    """The stage's record of a run: its summary, with the validation metrics."""
    validation = json.loads((folder / "metrics/validation/distilbert.json").read_text())
    summary = json.loads((folder / "summaries/train_distilbert.json").read_text())
    return {**summary, "validation": validation}


@pytest.fixture(scope="module")
def trained(projects: dict[str, Path]) -> dict:
    """Train once in one process (batch 16) and once on two "nodes" (batch 8 each)."""
    single = subprocess.run(
        [sys.executable, "-m", "imdb_sentiment.stages.train_distilbert"],
        cwd=projects["single"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-4000:]

    endpoint = f"127.0.0.1:{free_port()}"
    agents = []
    for rank in (0, 1):
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
            "--nproc-per-node", "1", "--node-rank", str(rank), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", endpoint, "--rdzv-id", "imdb-test", "--local-addr", "127.0.0.1",
            "-m", "imdb_sentiment.stages.train_distilbert",
        ]  # fmt: skip
        agents.append(
            subprocess.Popen(
                command,
                cwd=projects[f"node{rank}"],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [agent.communicate(timeout=600)[0] for agent in agents]
    for agent, log in zip(agents, logs, strict=True):
        assert agent.returncode == 0, log[-4000:]
    # c10d numbers the nodes by (address, pid), not by --node-rank: find global rank 0.
    writer = [i for i, log in enumerate(logs) if "process 1 of 2" in log]
    assert len(writer) == 1 and "process 2 of 2" in logs[1 - writer[0]], logs
    return {
        "main": projects[f"node{writer[0]}"],
        "other": projects[f"node{1 - writer[0]}"],
        "single": projects["single"],
        "checkpoints": projects["checkpoints"],
    }


def test_only_global_rank_zero_writes_the_outs(trained: dict) -> None:
    for out in OUTS:
        assert (trained["main"] / out).exists(), out
        assert not (trained["other"] / out).exists(), out
    assert not (trained["other"] / "models").exists()
    assert not (trained["other"] / "metrics").exists()
    assert not (trained["other"] / "summaries").exists()
    assert not trained["checkpoints"].exists()  # removed by rank 0 once the run finished


def curve(folder: Path, name: str) -> dict[int, float]:
    """A DVCLive curve (e.g. train/loss) as {step: value}."""
    path = folder / "dvclive/train_distilbert/plots/metrics" / f"{name}.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    column = name.split("/")[-1]
    return {int(row["step"]): float(row[column]) for row in rows}


def test_two_nodes_train_like_one_process_with_the_same_batch(trained: dict) -> None:
    expected, got = metrics(trained["single"]), metrics(trained["main"])
    # The same number of optimizer steps: two processes of 8 make one batch of 16.
    assert got["global_step"] == expected["global_step"] == 100
    assert curve(trained["main"], "train/learning_rate") == pytest.approx(
        curve(trained["single"], "train/learning_rate"), rel=1e-6
    )
    # Both learned (chance is 0.5). Their final accuracies are not compared: over 100 Adam
    # steps from a tiny model's saddle, float noise (a batch padded whole or in halves) adds
    # up; the early steps, compared below, are where the two layouts must agree.
    assert expected["validation"]["accuracy"] >= 0.7 and got["validation"]["accuracy"] >= 0.7


def test_two_nodes_report_the_losses_of_one_process(trained: dict) -> None:
    """The losses and gradient norms of the first steps, before float noise adds up, are
    those of one process: not multiplied by the number of processes, and neither are the
    gradients that max_grad_norm clips."""
    for name in ("train/loss", "train/grad_norm"):
        single, nodes = curve(trained["single"], name), curve(trained["main"], name)
        for step in (5, 10):  # the first two logged steps
            assert nodes[step] == pytest.approx(single[step], rel=1e-5), (name, step)
    # The end of epoch 1; within 0.5%: the two processes split the validation reviews into
    # batches of their own (the last one padded), which moves the mean a little.
    first_eval = min(curve(trained["single"], "eval/loss"))
    assert curve(trained["main"], "eval/loss")[first_eval] == pytest.approx(
        curve(trained["single"], "eval/loss")[first_eval], rel=5e-3
    )
