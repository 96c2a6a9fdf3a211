"""Tests of the train_distilbert stage on a tiny DistilBERT and synthetic reviews (CPU).

In-process: bad params and push_to_hub without a token stop with one line before anything
is loaded; every param reaches TrainingArguments; the stage trains, evaluates each epoch on
validation, logs to DVCLive once per step and saves a model that, reloaded, predicts what
the metrics say. Subprocesses: two processes (torchrun, gloo) train together; through the
real `dvc` CLI, a run killed after its first checkpoint resumes and ends byte-identical to
an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from dvc_helpers import declared_outs, kill_when, lock_outs, start_dvc
from helpers import (
    TINY_PARAMS,
    dvc,
    make_project_repo,
    run,
    set_params,
    write_aclimdb,
)
from huggingface_hub import ModelCard

from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.evaluation.metrics import model_size_mb
from imdb_sentiment.stages import prepare, tokenize
from imdb_sentiment.stages import train_distilbert as stage
from imdb_sentiment.transformer import arguments, fine_tune
from imdb_sentiment.transformer.arguments import resolve_mixed_precision
from imdb_sentiment.transformer.checkpoints import complete_checkpoints
from imdb_sentiment.transformer.curves import TIMING_KEY

# 200 synthetic reviews -> 150 train / 50 validation: enough for the tiny model to learn
# (its loss leaves 0.69 after about 100 steps) in a few seconds.
N_TRAIN_REVIEWS = 200
TRAIN_ROWS, VALIDATION_ROWS = 150, 50


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch):
    """One torch thread: the 2 shared cores are faster without oversubscription, and
    subprocesses get the same setting, so in- and out-of-process runs compare."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def tokenized_project(in_tmp_project: Path, tiny_model_dir: Path, one_thread: None) -> Path:
    """A project folder (the cwd) with tiny params and data/tokenized ready."""
    source = write_aclimdb(in_tmp_project / "raw", n_train=N_TRAIN_REVIEWS, n_test=16)
    set_params(
        in_tmp_project / "params.yaml",
        {"data.source": str(source), "model.name": str(tiny_model_dir), **TINY_PARAMS},
    )
    prepare.main()
    tokenize.main()
    return in_tmp_project


def run_record(root: Path) -> dict:
    """What the stage wrote of a run: its summary, with the validation metrics."""
    validation = json.loads((root / fine_tune.METRICS_FILE).read_text())
    return {**json.loads((root / fine_tune.SUMMARY_FILE).read_text()), "validation": validation}


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# --------------------------------------------------------------------------- params


def test_every_param_reaches_training_arguments() -> None:
    config = arguments.TrainParams(
        output_dir="ckpt",
        learning_rate=1.5e-5,
        per_device_train_batch_size=7,
        per_device_eval_batch_size=33,
        gradient_accumulation_steps=3,
        num_train_epochs=2.5,
        weight_decay=0.02,
        warmup_ratio=0.06,
        lr_scheduler_type="cosine",
        max_grad_norm=0.5,
        eval_strategy="steps",
        save_strategy="steps",
        eval_steps=20,
        save_steps=40,
        logging_steps=9,
        save_total_limit=3,
        metric_for_best_model="f1",
    )
    args = arguments.build_training_arguments(config, seed=7)
    assert args.output_dir == "ckpt"
    assert args.learning_rate == 1.5e-5
    assert args.per_device_train_batch_size == 7
    assert args.per_device_eval_batch_size == 33
    assert args.gradient_accumulation_steps == 3
    assert args.num_train_epochs == 2.5
    assert args.weight_decay == 0.02
    assert args.warmup_steps == 0.06
    assert args.lr_scheduler_type.value == "cosine"
    assert args.max_grad_norm == 0.5
    assert (args.eval_strategy.value, args.save_strategy.value) == ("steps", "steps")
    assert (args.eval_steps, args.save_steps, args.logging_steps) == (20, 40, 9)
    assert args.save_total_limit == 3
    assert args.load_best_model_at_end is True
    assert (args.metric_for_best_model, args.greater_is_better) == ("f1", True)
    assert (args.seed, args.data_seed) == (7, 7)
    assert (args.bf16, args.fp16) == (False, False)  # auto on a CPU: fp32
    assert args.push_to_hub is False
    assert args.report_to == [] or args.report_to == "none" or args.report_to == ["none"]

    loss_config = config.model_copy(update={"metric_for_best_model": "loss"})
    assert arguments.build_training_arguments(loss_config, seed=7).greater_is_better is False


def test_mixed_precision_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert resolve_mixed_precision("auto") == "no"  # this CPU
    with pytest.raises(
        StageError, match="train_distilbert.mixed_precision = 'bf16' needs a CUDA GPU"
    ):
        resolve_mixed_precision("bf16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_mixed_precision("auto") == "fp16"
    assert resolve_mixed_precision("no") == "no"


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (
            {"train_distilbert.learning_rate": -1},
            "params.yaml: train_distilbert.learning_rate = -1: ",
        ),
        (
            {"train_distilbert.warmup_ratio": 1.5},
            "params.yaml: train_distilbert.warmup_ratio = 1.5: ",
        ),
        (
            {"train_distilbert.mixed_precision": "fp8"},
            "params.yaml: train_distilbert.mixed_precision = 'fp8': ",
        ),
        (
            {"train_distilbert.num_processes": 0},
            "params.yaml: train_distilbert.num_processes = 0: ",
        ),
        (
            {"train_distilbert.batch_size": 8},
            "params.yaml: unknown key train_distilbert.batch_size",
        ),
        # Choosing the best epoch needs an evaluation at every save.
        (
            {"train_distilbert.eval_strategy": "epoch", "train_distilbert.save_strategy": "steps"},
            "params.yaml: train_distilbert: ",
        ),
    ],
)
def test_bad_params_fail_with_one_line(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], updates: dict, message: str
) -> None:
    # No data and no model exist here: the stage must stop on the params alone.
    set_params(in_tmp_project / "params.yaml", updates)
    with pytest.raises(SystemExit) as exited:
        run_stage(stage.main)
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"error: {message}"), lines
    assert "Traceback" not in "\n".join(lines)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (
            {"train_distilbert.push_to_hub": True, "train_distilbert.hub_model_id": "someone/imdb"},
            "no Hugging Face token was found: set HF_TOKEN",
        ),
        ({"train_distilbert.push_to_hub": True}, "train_distilbert.hub_model_id is not set"),
    ],
)
def test_push_to_hub_without_token_or_repo_fails_fast(
    in_tmp_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    updates: dict,
    message: str,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    # No token stored by `hf auth login` either.
    monkeypatch.setenv("HF_HOME", str(in_tmp_project / "hf-home"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(in_tmp_project / "hf-home" / "token"))
    set_params(in_tmp_project / "params.yaml", updates)
    started = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        run_stage(stage.main)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: params.yaml: train_distilbert.push_to_hub is true"), err
    assert message in err[-1]
    assert time.monotonic() - started < 10  # before any data or model was loaded
    assert not (in_tmp_project / "checkpoints").exists()


# --------------------------------------------------------------------------- training


def test_trains_evaluates_each_epoch_saves_and_reloads(
    tokenized_project: Path, tiny_model_dir: Path
) -> None:
    import datasets
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # A param changed in params.yaml must show in the run: the learning rate logged at
    # step 4 follows the linear decay from it (no warmup), the step count the batch size.
    learning_rate, batch_size, epochs = 0.0021, 8, TINY_PARAMS["train_distilbert.num_train_epochs"]
    set_params(tokenized_project / "params.yaml", {"train_distilbert.learning_rate": learning_rate})
    stage.main()

    steps_per_epoch = -(-TRAIN_ROWS // batch_size)
    total_steps = steps_per_epoch * epochs
    metrics = run_record(tokenized_project)
    assert metrics["global_step"] == total_steps
    # The keys of the test metrics, so `dvc metrics show` has no holes; the base model by name.
    assert set(metrics["validation"]) == {
        *("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "size_mb")
    }
    assert metrics["base_model"] == tiny_model_dir.name
    assert metrics["validation"]["accuracy"] >= 0.7  # it learned (chance is 0.5)
    assert not any(TIMING_KEY.search(key) for key in metrics)

    # DVCLive: one row per logged step (never twice), validation once per epoch.
    live = tokenized_project / fine_tune.LIVE_DIR / "plots" / "metrics"
    lr_rows = read_tsv(live / "train" / "learning_rate.tsv")
    assert lr_rows[0]["step"] == "4"
    # The rate logged at a step is the one its update used: 3 decay steps in.
    expected_lr = learning_rate * (1 - 3 / total_steps)
    assert float(lr_rows[0]["learning_rate"]) == pytest.approx(expected_lr, rel=1e-6)
    # Every logging_steps (4), and at every checkpoint (epoch end) so that a resumed run's
    # loss means cover the same steps.
    loss_steps = [int(row["step"]) for row in read_tsv(live / "train" / "loss.tsv")]
    epoch_ends = range(steps_per_epoch, total_steps + 1, steps_per_epoch)
    assert loss_steps == sorted({*range(4, total_steps + 1, 4), *epoch_ends})
    accuracy_rows = read_tsv(live / "eval" / "accuracy.tsv")
    assert [int(row["step"]) for row in accuracy_rows] == list(epoch_ends)
    assert max(float(row["accuracy"]) for row in accuracy_rows) == pytest.approx(
        metrics["validation"]["accuracy"]
    )
    logged = {path.stem for path in live.rglob("*.tsv")}
    assert not any(TIMING_KEY.search(name) for name in logged), logged
    assert not (tokenized_project / fine_tune.LIVE_DIR / "dvc.yaml").exists()

    # The saved model, tokenizer, tokenize config and card; checkpoints are gone.
    model_dir = tokenized_project / fine_tune.MODEL_DIR
    assert (model_dir / "model.safetensors").exists()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    assert (model_dir / "tokenize_config.json").read_text() == (
        tokenized_project / "data/tokenized/tokenize_config.json"
    ).read_text()
    card = (model_dir / "README.md").read_text()
    assert f"| accuracy | {metrics['validation']['accuracy']:.4f} |" in card
    assert '"learning_rate": 0.0021' in card
    # The card tells the truth about the run, with no path of this machine.
    assert "local data (`aclImdb`)" in card and "stanfordnlp/imdb" not in card
    assert '"max_train_samples": null' in card and "validation_size" in card
    assert "a local `distilbert` model" in card and str(tokenized_project) not in card
    # Named for the base model it was fine-tuned from, with its validation metrics as the
    # Hub's model-index results.
    assert f"\n# {tiny_model_dir.name} fine-tuned for IMDb sentiment\n" in card
    results = {r.metric_type: r.metric_value for r in ModelCard(card).data.eval_results}
    assert results["accuracy"] == round(metrics["validation"]["accuracy"], 6)
    assert set(results) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert metrics["validation"]["size_mb"] == model_size_mb(model_dir)
    assert str(tiny_model_dir) not in card
    assert not (tokenized_project / "checkpoints" / "distilbert").exists()
    # Its usage snippet cuts long reviews as training did: the same score as predict.
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    snippet = snippet.replace('model_id = "models/distilbert"', f'model_id = "{model_dir}"')
    long_review = " ".join(["a great film but the ending was awful"] * 40)
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify(", "_ = (classify("), "card", "exec"), namespace)
    label, score = namespace["classify"](long_review)
    from imdb_sentiment.inference import scorer

    p_positive = scorer.load_scorer("distilbert", "torch", model_dir, batch_size=1).proba(
        [long_review]
    )[0]
    expected = "POSITIVE" if p_positive >= 0.5 else "NEGATIVE"
    assert label == expected
    assert score == pytest.approx(max(p_positive, 1 - p_positive), abs=1e-5)

    # Reloaded, the model predicts what the metrics say, on the validation split.
    validation = datasets.load_from_disk("data/tokenized/hf")["validation"]
    assert len(validation) == VALIDATION_ROWS
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer.pad({"input_ids": validation["input_ids"]}, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    labels = np.asarray(validation["label"])
    accuracy = float((logits.argmax(-1).numpy() == labels).mean())
    assert accuracy == metrics["validation"]["accuracy"]
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels)).item()
    assert loss == pytest.approx(metrics["validation"]["log_loss"], abs=1e-4)
    from sklearn.metrics import roc_auc_score

    p_valid = logits.softmax(-1)[:, 1].numpy()
    roc_auc = roc_auc_score(labels, p_valid)
    assert roc_auc == pytest.approx(metrics["validation"]["roc_auc"], abs=1e-6)


@pytest.mark.parametrize(
    ("max_train_samples", "advice"),
    [
        (None, "`make quick` trains on a capped slice instead"),
        # A run on a capped slice (`make quick`) is not told to run `make quick`.
        (
            1600,
            "the training reviews are capped already; a smaller model (model.name, or "
            "MODEL= for `make quick`) trains faster",
        ),
    ],
)
def test_a_long_cpu_run_says_how_long_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    max_train_samples: int | None,
    advice: str,
) -> None:
    from types import SimpleNamespace

    from imdb_sentiment.transformer import progress

    pace = progress.progress_callbacks(
        "train_distilbert", progress.slow_cpu_advice(max_train_samples)
    )[1]
    clock = iter([100.0, 130.0])  # the start, then 3 steps later: 10 s a step
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    args = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    state = SimpleNamespace(global_step=0, max_steps=1003, is_world_process_zero=True)
    pace.on_step_begin(args, state, None)
    for step in range(1, 8):
        state.global_step = step
        pace.on_step_end(args, state, None)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "fine-tuning on a CPU: about 2.8 hours for 1003 steps at this pace (a GPU takes "
        f"minutes); {advice}"
    ]


def test_model_name_must_match_the_tokenized_data(tokenized_project: Path) -> None:
    set_params(tokenized_project / "params.yaml", {"model.name": "distilbert/other"})
    with pytest.raises(StageError, match="data/tokenized was made with the tokenizer of"):
        stage.main()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "tampered", [{"global_step": 10**12}, {"epoch": -5}], ids=["step-1e12", "epoch-minus-5"]
)
def test_a_tampered_checkpoint_is_set_aside_and_training_resumes_before_it(
    tokenized_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tampered: dict,
) -> None:
    """A checkpoint's trainer_state.json is checked against the run before it is resumed
    from: one that says 10**12 steps would train nothing and report that step as done."""
    set_params(tokenized_project / "params.yaml", {"train_distilbert.num_train_epochs": 3})
    # The checkpoints of a finished run kept, as a killed run leaves them.
    monkeypatch.setattr(fine_tune, "remove_checkpoints", lambda output_dir: None)
    stage.main()
    folder = tokenized_project / "checkpoints" / "distilbert"
    steps_per_epoch = -(-TRAIN_ROWS // 8)
    last = folder / f"checkpoint-{3 * steps_per_epoch}"
    state = json.loads((last / "trainer_state.json").read_text())
    (last / "trainer_state.json").write_text(json.dumps({**state, **tampered}))
    # The Trainer kept the best checkpoint and the last (save_total_limit 2).
    [earlier] = [path for path in folder.glob("checkpoint-*") if path != last]
    caplog.clear()
    caplog.set_level(logging.INFO, logger="imdb_sentiment")

    stage.main()
    assert run_record(tokenized_project)["global_step"] == 3 * steps_per_epoch
    assert (folder / f"set-aside-{last.name}").is_dir()
    messages = [record.getMessage() for record in caplog.records]
    assert any("set aside" in message and last.name in message for message in messages)
    resumed = [message for message in messages if message.startswith("resuming from")]
    assert resumed == [f"resuming from {earlier.relative_to(tokenized_project)}"]


@pytest.mark.e2e
def test_two_processes_train_as_one_with_the_same_effective_batch(
    tokenized_project: Path, tiny_model_dir: Path
) -> None:
    """train_distilbert.num_processes: 2 relaunches the stage under torchrun (gloo on a CPU);
    with the same effective batch, the losses, the gradients (so the weights) and the
    metrics are those of one process, not multiplied by the number of processes."""
    # Without dropout the two runs see the same computation, up to the order of sums.
    model_dir = tokenized_project / "no-dropout-model"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config.update(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    (model_dir / "config.json").write_text(json.dumps(config))
    common = {"model.name": str(model_dir), "train_distilbert.num_train_epochs": 3}
    set_params(tokenized_project / "params.yaml", common)
    tokenize.main()

    def train(processes: int, batch: int) -> dict:
        set_params(
            tokenized_project / "params.yaml",
            {
                "train_distilbert.num_processes": processes,
                "train_distilbert.per_device_train_batch_size": batch,
            },
        )
        result = run(
            [sys.executable, "-m", "imdb_sentiment.stages.train_distilbert"],
            cwd=tokenized_project,
            extra_env={"OMP_NUM_THREADS": "1"},
        )
        assert f"process {processes} of {processes}" in result.stderr
        return run_record(tokenized_project)

    one = train(1, 16)
    two = train(2, 8)
    # 150 reviews in global batches of 16: 10 steps per epoch either way.
    assert one["global_step"] == two["global_step"] == 30
    assert two["validation"]["log_loss"] == pytest.approx(one["validation"]["log_loss"], rel=1e-3)
    # The last logged loss is a mean over a few steps: float noise of 30 steps, not 2x.
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-2)
    assert two["validation"]["accuracy"] == pytest.approx(one["validation"]["accuracy"], abs=0.021)
    assert (tokenized_project / fine_tune.MODEL_DIR / "model.safetensors").exists()
    assert not list(tokenized_project.glob("models/.distilbert.tmp-*"))


# --------------------------------------------------------------------------- dvc e2e


def stage_outs_md5(repo: Path) -> dict[str, str]:
    outs = declared_outs(repo)["train_distilbert"]
    return {path: md5 for path, md5 in lock_outs(repo).items() if path in outs}


@pytest.mark.e2e
def test_killed_run_resumes_to_the_same_result(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    source = write_aclimdb(tmp_path / "source", n_train=N_TRAIN_REVIEWS, n_test=16)
    # 4 epochs of 19 steps: time to kill it after the first checkpoint, and quicker.
    repo = make_project_repo(
        tmp_path / "repo", source, tiny_model_dir, **{"train_distilbert.num_train_epochs": 4}
    )

    # An uninterrupted run through dvc.
    dvc(repo, "repro", "train_distilbert")
    first_md5 = stage_outs_md5(repo)
    first_record = run_record(repo)
    assert not (repo / "checkpoints/distilbert").exists()
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    plotted = json.dumps(plots)
    for curve in ("train/loss.tsv", "train/learning_rate.tsv", "eval/accuracy.tsv"):
        assert f"dvclive/train_distilbert/plots/metrics/{curve}" in plotted, curve
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    assert "metrics/validation/distilbert.json" in json.dumps(shown)

    # The same run, killed (SIGKILL) once its first checkpoint is complete. The whole process
    # group goes, as on a crash: killing only one process could hit the `sh -c` wrapper and
    # leave the stage's python running on as an orphan that finishes the run by itself.
    log = tmp_path / "killed-repro.log"
    killed = start_dvc(repo, "repro", "-f", "-s", "train_distilbert", log=log)
    kill_when(
        killed,
        lambda: bool(complete_checkpoints(repo / "checkpoints/distilbert")),
        log,
        timeout=240,
    )
    assert not (repo / "metrics/validation/distilbert.json").exists()
    assert list(repo.glob("checkpoints/distilbert/checkpoint-*"))

    # A plain `dvc repro` resumes from the checkpoint and ends where the first run did.
    resumed = dvc(repo, "repro", "train_distilbert")
    assert "resuming from checkpoints/distilbert/checkpoint-" in resumed.stdout + resumed.stderr
    assert run_record(repo) == first_record
    assert stage_outs_md5(repo) == first_md5  # model, metrics and DVCLive files
    assert not (repo / "checkpoints/distilbert").exists()
    status = run([sys.executable, "-m", "dvc", "status", "train_distilbert"], cwd=repo)
    assert "changed" not in status.stdout


def test_every_progress_bar_of_training_is_drawn_with_its_label(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The training and validation bars say what they count from their first frame: tqdm
    draws a bar when it is made, so a label set afterwards leaves an unlabelled line."""
    from types import SimpleNamespace

    from imdb_sentiment.transformer import progress

    bars = progress.progress_callbacks("train_distilbert")[0]
    state = SimpleNamespace(
        max_steps=4, num_train_epochs=2, epoch=0, global_step=0, is_world_process_zero=True
    )
    args = SimpleNamespace()
    bars.on_train_begin(args, state, None)
    for _ in range(3):
        bars.on_prediction_step(args, state, None, eval_dataloader=[1, 2, 3])
    bars.on_evaluate(args, state, None)
    bars.on_train_end(args, state, None)
    drawn = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", capsys.readouterr().err)  # cursor moves
    frames = [frame for frame in drawn.replace("\r", "\n").splitlines() if "|" in frame]
    assert frames and all(
        frame.strip().startswith(("train_distilbert epoch 1/2", "train_distilbert validation"))
        for frame in frames
    ), frames
    assert any("validation" in frame for frame in frames)
