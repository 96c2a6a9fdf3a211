"""evaluate and the fast inference it shares with predict: unit tests on a tiny workspace
(built once per module), and one end-to-end test of the whole `dvc repro`."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dvc_helpers import Reference, clone_with_cache, declared_outs, pipeline_stages, stage_specs
from evaluate_workspace import build_workspace, chdir
from helpers import (
    PROJECT_ROOT,
    assert_test_metrics_match_predictions,
    dvc,
    read_test_metrics,
    run,
    set_params,
)

from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.core.params import load_section
from imdb_sentiment.evaluation import errors_report
from imdb_sentiment.evaluation import predictions as predictions_module
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.evaluation.plots import accuracy_by_length, curve_frames
from imdb_sentiment.inference import test_split
from imdb_sentiment.inference.batching import length_sorted_batches, pad_batch
from imdb_sentiment.inference.cls_shortcut import first_position_last_layer
from imdb_sentiment.inference.onnx_backend import FP32_FILE
from imdb_sentiment.inference.torch_backend import predict_logits
from imdb_sentiment.stages import evaluate
from imdb_sentiment.transformer.loading import load_tokenizer

METRIC_KEYS = {
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "size_mb",
}
PLOT_TITLES = (
    "Confusion matrices (test)",
    "ROC curve (test)",
    "Precision-recall curve (test)",
    "Accuracy by review length (test)",
)
PLOT_FILES = ("confusion.csv", "roc.csv", "precision_recall.csv", "accuracy_by_length.csv")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_workspace(tmp_path_factory.mktemp("evaluate") / "project", tiny_model_dir)


@pytest.fixture(scope="module")
def evaluated(workspace: Path) -> Path:
    with chdir(workspace):
        evaluate.main()
    return workspace


# --- fast inference -------------------------------------------------------------------


def test_length_sorted_batches_cover_every_input_longest_first() -> None:
    lengths = [3, 9, 1, 9, 5, 7, 2]
    batches = length_sorted_batches(lengths, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    # Longest first, and equal lengths (the two 9s) keep their input order.
    assert flat.tolist()[:2] == [1, 3]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_pad_batch_pads_to_the_longest_with_a_mask(workspace: Path) -> None:
    tokenizer = load_tokenizer(str(workspace / "models/distilbert"), param=None)
    assert tokenizer.pad_token_id == 0
    ids, mask = pad_batch(tokenizer, [[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def _random_inputs(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    # [CLS]=2 ... [SEP]=3 around a body of random length, like the tokenized split.
    return [[2, *rng.integers(5, vocab, rng.integers(1, 40)).tolist(), 3] for _ in range(n)]


def test_predict_logits_keep_input_order_and_match_one_review_at_a_time(
    workspace: Path,
) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(workspace / "models/distilbert")
    tokenizer = load_tokenizer(str(workspace / "models/distilbert"), param=None)
    inputs = _random_inputs(23, model.config.vocab_size)
    batched = predict_logits(model, inputs, tokenizer=tokenizer, batch_size=8)
    one_by_one = np.vstack(
        [predict_logits(model, [ids], tokenizer=tokenizer, batch_size=1) for ids in inputs]
    )
    assert batched.shape == (23, 2) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Shuffling the inputs shuffles the outputs the same way.
    perm = np.random.default_rng(1).permutation(len(inputs))
    shuffled = predict_logits(model, [inputs[i] for i in perm], tokenizer=tokenizer, batch_size=8)
    np.testing.assert_allclose(shuffled, batched[perm], atol=1e-5)
    proba = positive_proba(batched)
    assert ((proba > 0) & (proba < 1)).all()


def test_the_last_layer_computing_only_cls_gives_the_full_models_logits(
    workspace: Path,
) -> None:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        BertConfig,
    )

    model = AutoModelForSequenceClassification.from_pretrained(workspace / "models/distilbert")
    tokenizer = load_tokenizer(str(workspace / "models/distilbert"), param=None)
    inputs = _random_inputs(12, model.config.vocab_size)
    ids, mask = pad_batch(tokenizer, inputs)
    with torch.inference_mode():
        full = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    last = model.distilbert.transformer.layer[-1]
    with first_position_last_layer(model) as applied:
        assert applied and "forward" in vars(last)
        got = predict_logits(
            model, inputs, tokenizer=tokenizer, batch_size=5, first_position_only=True
        )
    assert "forward" not in vars(last)  # the class's forward is back
    np.testing.assert_allclose(got, full.logits.numpy(), atol=1e-5)
    plain = predict_logits(model, inputs, tokenizer=tokenizer, first_position_only=False)
    np.testing.assert_allclose(got, plain, atol=1e-5)

    # BERT too; a model whose head reads more than [CLS] runs whole.
    bert_config = BertConfig(
        vocab_size=model.config.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    bert = AutoModelForSequenceClassification.from_config(bert_config).eval()
    np.testing.assert_allclose(
        predict_logits(bert, inputs, tokenizer=tokenizer, first_position_only=True),
        predict_logits(bert, inputs, tokenizer=tokenizer, first_position_only=False),
        atol=1e-5,
    )
    token_classifier = AutoModelForTokenClassification.from_config(bert_config)
    with first_position_last_layer(token_classifier) as applied:
        assert not applied


def test_predict_logits_halves_the_batch_when_it_runs_out_of_memory(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(workspace / "models/distilbert")
    tokenizer = load_tokenizer(str(workspace / "models/distilbert"), param=None)
    inputs = _random_inputs(10, model.config.vocab_size)
    expected = predict_logits(model, inputs, tokenizer=tokenizer, batch_size=10)
    forward = model.forward
    seen_batches = []

    def limited_forward(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        seen_batches.append(rows)
        if rows > 3:
            raise torch.OutOfMemoryError("fake: batch too large")
        return forward(*args, **kwargs)

    model.forward = limited_forward
    with caplog.at_level(logging.WARNING):
        got = predict_logits(model, inputs, tokenizer=tokenizer, batch_size=10)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert seen_batches[:3] == [10, 5, 2]
    assert max(seen_batches[2:]) <= 3
    assert "batch size lowered to 2" in caplog.text


def test_predict_logits_refuses_an_empty_input() -> None:
    with pytest.raises(StageError, match="no token ids"):
        predict_logits(object(), [[2, 3], []], tokenizer=None)


# --- evaluate's pieces ----------------------------------------------------------------


def test_curves_are_downsampled_and_keep_their_ends() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    proba = np.clip(labels * 0.3 + rng.random(5000) * 0.7, 0, 1)
    roc, pr = curve_frames(labels, proba, points=50)
    assert 2 <= len(roc) <= 50 and 2 <= len(pr) <= 50
    assert (roc.iloc[0]["fpr"], roc.iloc[0]["tpr"]) == (0.0, 0.0)
    assert (roc.iloc[-1]["fpr"], roc.iloc[-1]["tpr"]) == (1.0, 1.0)
    assert roc["fpr"].is_monotonic_increasing and pr["recall"].is_monotonic_increasing
    assert np.isfinite(roc["threshold"]).all()


def test_accuracy_by_length_buckets_by_whole_review_tokens() -> None:
    labels = np.array([1, 1, 0, 0, 1])
    predicted = np.array([1, 0, 0, 1, 1])
    n_tokens = np.array([10, 127, 128, 600, 2000])
    table = accuracy_by_length(labels, predicted, n_tokens, [128, 512, 1024])
    assert table["bucket"].tolist() == ["0-127", "128-511", "512-1023", "1024+"]
    assert table["reviews"].tolist() == [2, 1, 1, 1]
    assert table["accuracy"].tolist() == [0.5, 1.0, 0.0, 1.0]


def test_confident_errors_are_the_most_confident_wrong_predictions() -> None:
    frame = pd.DataFrame(
        {
            "text": ["a " * 400, "fine", "bad", "ok", "meh"],
            "label": [0, 1, 0, 1, 1],
            "n_tokens": [400, 1, 1, 1, 1],
        }
    )
    proba = np.array([0.97, 0.2, 0.1, 0.9, 0.45])
    errors = errors_report.confident_errors(frame, proba, n_errors=2, chars=50)
    assert [e["p_positive"] for e in errors] == [0.97, 0.2]
    assert errors[0]["label"] == "NEGATIVE" and len(errors[0]["text"]) <= 50
    assert errors[0]["text"].endswith("…")


def test_a_bad_evaluate_param_stops_with_one_line(workspace: Path) -> None:
    with pytest.raises(StageError, match=r"evaluate.length_buckets = \[256, 128\]"):
        load_section(
            {"evaluate": {"length_buckets": [256, 128]}}, "evaluate", test_split.EvaluateParams
        )
    with pytest.raises(StageError, match="unknown key evaluate.batch"):
        load_section({"evaluate": {"batch": 4}}, "evaluate", test_split.EvaluateParams)


@pytest.mark.e2e
def test_a_missing_model_stops_evaluate_with_one_line(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(workspace, copy)
    shutil.rmtree(copy / "models/linear")
    evaluate_linear = [sys.executable, "-m", "imdb_sentiment.stages.evaluate", "linear"]
    result = run(evaluate_linear, cwd=copy, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: models/linear is missing: run `dvc repro` to train it first"
    )
    assert not any((copy / out).exists() for out in evaluate.model_outputs("linear"))


def test_an_unknown_model_name_stops_evaluate_with_one_line(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run_stage(lambda: evaluate.main(["rf", "bert"]))
    assert capsys.readouterr().err.strip() == (
        "error: evaluate: no model named 'bert' (valid: rf, linear, distilbert, distilbert_int8)"
    )


def test_each_evaluate_stage_declares_the_model_it_scores_and_the_outs_it_writes() -> None:
    """dvc.yaml's foreach items against the stage's code: a model folder or an out that
    dvc.yaml does not name would leave `evaluate@MODEL` stale or its outs untracked."""
    specs = stage_specs(PROJECT_ROOT)
    outs = declared_outs(PROJECT_ROOT)
    stages = {name.split("@")[1]: name for name in specs if name.startswith("evaluate@")}
    assert sorted(stages) == sorted(test_split.EVALUATED_MODELS)
    for model, stage in stages.items():
        assert specs[stage]["cmd"] == f"python -m imdb_sentiment.stages.evaluate {model}"
        data = [dep for dep in specs[stage]["deps"] if not dep.startswith("src/")]
        assert test_split.evaluated_model_dir(model).as_posix() in data, stage
        tokenized = "data/tokenized" if model.startswith("distilbert") else "data/tokenized/frame"
        assert tokenized in data and len(data) == 2, (stage, data)
        assert set(outs[stage]) == {p.as_posix() for p in evaluate.model_outputs(model)}
        # The predictions are cached and pushed by DVC; the rest is small and kept in Git.
        assert {path for path, flags in outs[stage].items() if flags["cache"]} == {
            f"predictions/test/{model}.parquet"
        }


# --- evaluate's outputs ---------------------------------------------------------------


def test_evaluate_writes_one_flat_scorecard_per_model(evaluated: Path) -> None:
    """Each model's scorecard holds the metrics of its own predictions of the prepared
    test split, recomputed here with scikit-learn, and the size of its folder."""
    scores = read_test_metrics(evaluated)
    assert set(scores) == {"rf", "linear", "distilbert", "distilbert_int8"}
    for name, metrics in scores.items():
        assert set(metrics) == METRIC_KEYS, name
    assert_test_metrics_match_predictions(evaluated)
    prepared = pd.read_parquet(evaluated / "data/prepared/test.parquet")
    split = sorted(zip(prepared["review_id"], prepared["label"], strict=True))
    for name, metrics in scores.items():
        predictions = pd.read_parquet(evaluated / f"predictions/test/{name}.parquet")
        assert sorted(zip(predictions["review_id"], predictions["label"], strict=True)) == split
        # The folder the model is served from (for int8, without the fp32 graph beside it).
        folder = evaluated / test_split.evaluated_model_dir(name)
        files = [p for p in folder.rglob("*") if p.is_file() and p.name != FP32_FILE]
        assert metrics["size_mb"] == round(sum(p.stat().st_size for p in files) / 1e6, 3), name
    # Times are kept apart from the quality metrics (timings/ is no DVC metric).
    for name in scores:
        timing = json.loads((evaluated / f"timings/evaluate/{name}.json").read_text())
        assert timing["runtime_s"] > 0 and timing["reviews_per_s"] > 0


def test_distilbert_log_loss_is_the_models_cross_entropy(evaluated: Path) -> None:
    """The transformer's log loss equals the mean cross-entropy its own loss computes,
    i.e. the eval loss `Trainer.evaluate` reports."""
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification

    test = datasets.load_from_disk(str(evaluated / "data/tokenized/hf"))["test"]
    model = AutoModelForSequenceClassification.from_pretrained(evaluated / "models/distilbert")
    tokenizer = load_tokenizer(str(evaluated / "models/distilbert"), param=None)
    ids, mask = pad_batch(tokenizer, test["input_ids"])
    with torch.inference_mode():
        loss = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            labels=torch.tensor(test["label"]),
        ).loss
    scores = read_test_metrics(evaluated)
    assert scores["distilbert"]["log_loss"] == pytest.approx(float(loss), abs=1e-5)


def test_evaluate_writes_plot_data_for_every_model(evaluated: Path) -> None:
    test = pd.read_parquet(evaluated / "data/tokenized/frame/test.parquet")
    for name in ("rf", "linear", "distilbert", "distilbert_int8"):
        folder = evaluated / "plots/evaluate" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(PLOT_FILES)
        # The count of each actual / predicted pair, zeros included.
        confusion = pd.read_csv(folder / "confusion.csv")
        assert list(confusion.columns) == ["actual", "predicted", "reviews"]
        assert set(zip(confusion["actual"], confusion["predicted"], strict=True)) == {
            ("neg", "neg"),
            ("neg", "pos"),
            ("pos", "neg"),
            ("pos", "pos"),
        }
        assert confusion["reviews"].sum() == len(test)
        positives = confusion.loc[confusion["actual"] == "pos", "reviews"].sum()
        assert positives == test["label"].sum()
        predictions = pd.read_parquet(evaluated / f"predictions/test/{name}.parquet")
        right = confusion.loc[confusion["actual"] == confusion["predicted"], "reviews"].sum()
        assert right == ((predictions["p_positive"] >= 0.5) == predictions["label"]).sum()
        roc = pd.read_csv(folder / "roc.csv")
        assert list(roc.columns) == ["fpr", "tpr", "threshold"] and len(roc) <= 200
        pr = pd.read_csv(folder / "precision_recall.csv")
        assert list(pr.columns) == ["recall", "precision", "threshold"]
        by_length = pd.read_csv(folder / "accuracy_by_length.csv")
        assert by_length["reviews"].sum() == len(test)
        assert by_length["accuracy"].between(0, 1).all()


def test_errors_file_lists_confidently_wrong_reviews_per_model(evaluated: Path) -> None:
    for name in ("rf", "linear", "distilbert", "distilbert_int8"):
        text = (evaluated / f"metrics/errors/{name}.md").read_text()
        assert text.startswith(f"# {name}: the most confidently wrong test reviews\n")
        rows = [line for line in text.splitlines() if line.startswith("| ")][2:]
        assert 1 <= len(rows) <= 3  # evaluate.n_errors in the tiny params
        assert all(" NEGATIVE " in row or " POSITIVE " in row for row in rows)


def test_predictions_are_every_test_review_by_its_key(evaluated: Path) -> None:
    test = pd.read_parquet(evaluated / "data/tokenized/frame/test.parquet")
    summaries = {}
    for name, metrics in read_test_metrics(evaluated).items():
        predictions = pd.read_parquet(evaluated / f"predictions/test/{name}.parquet")
        assert list(predictions.columns) == ["review_id", "label", "p_positive"]
        assert predictions["review_id"].tolist() == test["review_id"].tolist()
        assert predictions["label"].tolist() == test["label"].tolist()
        assert predictions["p_positive"].between(0, 1).all()
        summary = json.loads((evaluated / f"predictions/test/{name}.json").read_text())
        assert summary["reviews"] == len(test)
        assert summary["correct"] / summary["reviews"] == pytest.approx(metrics["accuracy"])
        fingerprint = pq.read_schema(evaluated / f"predictions/test/{name}.parquet").metadata[
            predictions_module.FINGERPRINT_KEY
        ]
        assert fingerprint.decode() == summary["test_set"]
        summaries[name] = summary
    # One test split, so one fingerprint: that of its review ids and labels.
    expected = predictions_module.fingerprint(test["review_id"], test["label"])
    assert {summary["test_set"] for summary in summaries.values()} == {expected}


def test_evaluate_twice_gives_the_same_quality_metrics(evaluated: Path) -> None:
    first = read_test_metrics(evaluated)
    plots = {p: p.read_bytes() for p in (evaluated / "plots/evaluate").rglob("*.csv")}
    with chdir(evaluated):
        evaluate.main()
    second = read_test_metrics(evaluated)
    assert second == first
    assert {p: p.read_bytes() for p in plots} == plots


# --- end to end -----------------------------------------------------------------------


@pytest.mark.e2e
def test_dvc_repro_evaluates_every_model_and_predict_labels_reviews(
    reference: Reference, tmp_path: Path
) -> None:
    # The session's run of the whole pipeline, committed on main, in a clone with its cache.
    project_repo = clone_with_cache(reference.repo, tmp_path / "repo")
    scores = read_test_metrics(project_repo)
    assert_test_metrics_match_predictions(project_repo)

    shown = dvc(project_repo, "metrics", "show", "--json").stdout
    assert "metrics/test/distilbert.json" in shown and '"accuracy"' in shown
    # A committed run, then a changed param: only what reads it reruns, and the diff table
    # has a row per model metric.
    set_params(project_repo / "params.yaml", {"train_linear.C": 0.05})
    rerun = dvc(project_repo, "repro").stdout
    for stage in pipeline_stages(project_repo):
        ran = f"Running stage '{stage}'" in rerun
        assert ran == (stage in {"train_linear", "evaluate@linear"}), (stage, rerun)
    diff = dvc(project_repo, "metrics", "diff", "main", "--md").stdout
    linear_log_loss = re.compile(r"\| metrics/test/linear\.json +\| log_loss +\|")
    assert linear_log_loss.search(diff), diff
    # `make report` prints the three tables: each model compared review by review on the
    # same test reviews (only linear can have changed), the metrics and the params.
    (project_repo / "scripts").mkdir()
    shutil.copy2(PROJECT_ROOT / "scripts/report.py", project_repo / "scripts/report.py")
    report = run([sys.executable, "scripts/report.py", "main"], cwd=project_repo).stdout
    accuracy = report.split("## Test accuracy: workspace against main\n", 1)[1].split("\n## ")[0]
    rows = [line.split("|")[1:-1] for line in accuracy.splitlines() if line.startswith("| ")]
    verdicts = {cells[0].strip(): cells[-1].strip() for cells in rows[2:]}
    assert set(verdicts) == set(scores)
    assert {verdicts[model] for model in verdicts if model != "linear"} == {"within noise"}
    assert "## Metrics: workspace against main" in report
    assert linear_log_loss.search(report) and "| train_linear.C " in report
    assert report.count("| Path ") >= 2  # the metrics and params tables

    out_dir = project_repo / "rendered"
    dvc(project_repo, "plots", "show", "-o", str(out_dir))
    page = (out_dir / "index.html").read_text()
    for title in PLOT_TITLES:
        assert title in page
    dvc(project_repo, "plots", "diff", "main", "-o", str(project_repo / "rendered_diff"))
    assert "ROC curve (test)" in (project_repo / "rendered_diff/index.html").read_text()

    # predict gives each review the trained model's own P(positive), computed here with
    # transformers alone (torch, as --backend auto may pick the int8 copy on this CPU).
    reviews = ["A superb film.", "Awful."]
    predict = [sys.executable, "-m", "imdb_sentiment.cli.predict", "--backend", "torch"]
    result = run([*predict, "--format", "jsonl", *reviews], cwd=project_repo)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["index"] for row in rows] == [1, 2]
    for row, p_positive in zip(rows, transformers_p_positive(project_repo, reviews), strict=True):
        assert row["p_positive"] == pytest.approx(p_positive, abs=1e-5), row
        assert row["label"] == ("POSITIVE" if p_positive >= 0.5 else "NEGATIVE"), row
        assert row["score"] == pytest.approx(max(p_positive, 1 - p_positive), abs=1e-5), row


def transformers_p_positive(repo: Path, reviews: list[str]) -> list[float]:
    """P(positive) of short reviews (nothing to clean or cut) by models/distilbert, loaded
    with transformers and run in fp32: the label named POSITIVE in its config."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = repo / "models/distilbert"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(reviews, padding=True, return_tensors="pt")).logits
    return logits.float().softmax(-1)[:, model.config.label2id["POSITIVE"]].tolist()
