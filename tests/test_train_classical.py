"""Tests of the classical models: train_rf and train_linear on tiny synthetic frames.

Each test writes a small tokenized frame (synthetic reviews, whitespace tokens) into a
temporary project and runs the stage's main() in-process; the e2e test runs the real
`dvc repro` twice and checks that the models' hashes do not move.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from dvc_helpers import declared_outs, lock_outs
from helpers import (
    SPLIT_SIZES,
    TINY_PARAMS,
    dvc,
    make_reviews,
    run,
    set_params,
    tokens_of,
    write_frames,
)
from ruamel.yaml import YAML
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from imdb_sentiment.classical import linear
from imdb_sentiment.classical.features import pipeline_positive_proba
from imdb_sentiment.classical.store import (
    MODEL_FILE,
    load_classical_model,
    model_bytes,
    save_classical_model,
)
from imdb_sentiment.classical.training import fit_pipeline, read_frame
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.params import load_section
from imdb_sentiment.evaluation.metrics import model_size_mb
from imdb_sentiment.stages import train_linear, train_rf

STAGES = {"rf": train_rf, "linear": train_linear}
SECTIONS = {"rf": "train_rf", "linear": "train_linear"}


@pytest.fixture
def frame_project(in_tmp_project: Path) -> Path:
    """A temporary project with the tiny params and a tokenized frame of synthetic reviews."""
    set_params(in_tmp_project / "params.yaml", TINY_PARAMS)
    write_frames(in_tmp_project)
    return in_tmp_project


def outputs(root: Path, name: str) -> tuple[Path, Path]:
    return root / "models" / name / MODEL_FILE, root / "metrics/validation" / f"{name}.json"


@pytest.mark.parametrize("name", ["rf", "linear"])
def test_stage_trains_saves_and_reports(frame_project: Path, name: str) -> None:
    STAGES[name].main()
    model_path, metrics_path = outputs(frame_project, name)
    metrics = json.loads(metrics_path.read_text())
    # The keys of the test metrics (one `dvc metrics show` table with no holes), the
    # model's size as evaluate measures it.
    assert set(metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "size_mb",
    }
    assert metrics["size_mb"] == model_size_mb(model_path.parent) > 0
    summary = json.loads((frame_project / f"summaries/train_{name}.json").read_text())
    assert summary["train_reviews"] == SPLIT_SIZES["train"] and summary["n_features"] > 0
    timings = json.loads((frame_project / f"timings/train_{name}.json").read_text())
    assert timings["fit_s"] > 0
    # The synthetic reviews lean 80/20 on sentiment words: learnable, not perfectly.
    assert metrics["accuracy"] > 0.75
    assert metrics["roc_auc"] > 0.8

    # Round trip: the saved pipeline takes a frame with text and tokens and reproduces the
    # validation figures it was scored with.
    pipeline = load_classical_model(model_path.parent)
    assert isinstance(pipeline, Pipeline)
    validation = read_frame("validation")
    proba = pipeline.predict_proba(validation[["text", "tokens"]])
    assert proba.shape == (len(validation), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    accuracy = float(((proba[:, 1] >= 0.5) == validation["label"].to_numpy()).mean())
    assert accuracy == metrics["accuracy"]
    # No leftovers from the atomic writes.
    assert not [p for p in (frame_project / "models").iterdir() if p.name.startswith(".")]


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["rf", "linear"])
def test_rerun_gives_same_bytes(frame_project: Path, name: str) -> None:
    """Once in this process, once in a fresh one (other object ids, other hash seed, other
    clock): the same model bytes, the same metrics."""
    model_path, metrics_path = outputs(frame_project, name)
    STAGES[name].main()
    first_model, first_metrics = model_path.read_bytes(), json.loads(metrics_path.read_text())
    run([sys.executable, "-m", f"imdb_sentiment.stages.train_{name}"], cwd=frame_project)
    assert model_path.read_bytes() == first_model
    assert json.loads(metrics_path.read_text()) == first_metrics


def test_model_bytes_do_not_depend_on_object_ids_or_time(frame_project: Path) -> None:
    """skops names entries after id()s and stamps the time: two equal pipelines built
    apart (different ids, different seconds) must still give the same archive."""
    config = load_section(
        YAML(typ="safe").load(Path("params.yaml").read_text()),
        "train_linear",
        linear.LinearParams,
    )
    train = read_frame("train")
    first = linear.build_pipeline(config, seed=3)
    fit_pipeline(first, train)
    first_bytes = model_bytes(first)
    second = linear.build_pipeline(config, seed=3)
    fit_pipeline(second, train)
    keep_alive = [first]  # so that `second` cannot reuse the ids of `first`'s parts
    assert model_bytes(second) == first_bytes
    assert keep_alive


def test_saving_changes_nothing_and_loses_nothing(frame_project: Path) -> None:
    """The saved state is rewritten (vocabulary as arrays, ids renumbered): the fitted
    pipeline must be untouched by saving, and the loaded one hold the same attributes."""
    config = load_section(
        YAML(typ="safe").load(Path("params.yaml").read_text()),
        "train_linear",
        linear.LinearParams,
    )
    pipeline = linear.build_pipeline(config, seed=0)
    fit_pipeline(pipeline, read_frame("train"))
    validation = read_frame("validation")
    before = pipeline_positive_proba(pipeline, validation)
    save_classical_model(pipeline, frame_project / "saved")
    np.testing.assert_array_equal(pipeline_positive_proba(pipeline, validation), before)
    loaded = load_classical_model(frame_project / "saved")
    np.testing.assert_array_equal(pipeline_positive_proba(loaded, validation), before)
    for (name, fitted, _), (_, restored, _) in zip(
        pipeline.named_steps["features"].transformers_,
        loaded.named_steps["features"].transformers_,
        strict=True,
    ):
        if isinstance(fitted, str):  # the remainder: "drop"
            continue
        assert set(vars(restored)) == set(vars(fitted)), name
        assert restored.vocabulary_ == fitted.vocabulary_


def test_saved_pipeline_predicts_raw_reviews(frame_project: Path) -> None:
    """What `predict` will do: a frame built from new texts, scored by the loaded model."""
    train_linear.main()
    pipeline = load_classical_model(frame_project / "models" / "linear")
    texts = ["Wonderful superb brilliant film, loved it.", "Awful boring dull waste, hated it."]
    frame = pd.DataFrame({"text": texts, "tokens": [tokens_of(t) for t in texts]})
    proba = pipeline_positive_proba(pipeline, frame)
    assert proba[0] > 0.5 > proba[1]


class NotTrusted(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_load_refuses_untrusted_types(tmp_path: Path) -> None:
    skops.io.dump(Pipeline([("odd", NotTrusted())]), tmp_path / MODEL_FILE)
    with pytest.raises(StageError, match="not trusted.*NotTrusted"):
        load_classical_model(tmp_path)
    with pytest.raises(StageError, match="missing"):
        load_classical_model(tmp_path / "nowhere")


def assert_nothing_written(root: Path) -> None:
    assert not (root / "models").exists()
    assert not (root / "metrics").exists()


@pytest.mark.parametrize("name", ["rf", "linear"])
@pytest.mark.parametrize(
    ("train_labels", "message"),
    [([], "train split is empty"), ([1] * 30, "single class \\(label 1\\)")],
    ids=["empty", "single-class"],
)
def test_unlearnable_training_split_stops(
    in_tmp_project: Path, name: str, train_labels: list[int], message: str
) -> None:
    reviews = make_reviews(60)
    train = reviews[reviews["label"] == 1].head(len(train_labels)).reset_index(drop=True)
    write_frames(in_tmp_project, {"train": train, "validation": reviews, "test": reviews})
    with pytest.raises(StageError, match=message):
        STAGES[name].main()
    assert_nothing_written(in_tmp_project)


@pytest.mark.parametrize("name", ["rf", "linear"])
def test_empty_vocabulary_stops(frame_project: Path, name: str) -> None:
    # No n-gram is in 10,000 of 240 reviews.
    set_params(frame_project / "params.yaml", {f"{SECTIONS[name]}.min_df": 10_000})
    with pytest.raises(StageError, match="vocabulary came out empty.*min_df"):
        STAGES[name].main()
    assert_nothing_written(frame_project)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train_rf.n_estimators", 0, "train_rf.n_estimators = 0"),
        ("train_rf.max_features", 1.5, "train_rf.max_features = 1.5"),
        ("train_rf.max_features", 0, "train_rf.max_features = 0"),
        ("train_rf.max_samples", 0.0, "train_rf.max_samples = 0.0"),
        ("train_rf.select_k", 0, "train_rf.select_k = 0"),
        ("train_rf.class_weight", "heavy", "train_rf.class_weight = 'heavy'"),
        ("train_rf.n_jobs", 0, "train_rf.n_jobs = 0"),
        ("train_rf.max_df", 1.5, "train_rf.max_df = 1.5"),
        ("train_rf.column", "words", "train_rf.column = 'words'"),
        ("train_rf.trees", 10, "unknown key train_rf.trees"),
        ("train_linear.C", -1.0, "train_linear.C = -1.0"),
        ("train_linear.ngram_max", 9, "train_linear.ngram_max = 9"),
        ("train_linear.char_ngrams", [5, 2], "train_linear.char_ngrams"),
        ("train_linear.nb_alpha", 0, "train_linear.nb_alpha = 0"),
        ("train_linear.min_df", 0, "train_linear.min_df = 0"),
    ],
)
def test_bad_param_stops_before_reading_data(
    in_tmp_project: Path, key: str, value: object, message: str
) -> None:
    # No frame is written: a bad param must stop the stage before it looks for data.
    set_params(in_tmp_project / "params.yaml", {key: value})
    stage = train_rf if key.startswith("train_rf.") else train_linear
    with pytest.raises(StageError, match=re.escape(message)):
        stage.main()
    assert_nothing_written(in_tmp_project)


def test_missing_frame_or_column_stops(in_tmp_project: Path) -> None:
    with pytest.raises(StageError, match="run `dvc repro tokenize` first"):
        train_rf.main()
    write_frames(in_tmp_project)
    path = in_tmp_project / "data" / "tokenized" / "frame" / "train.parquet"
    pd.read_parquet(path).drop(columns="tokens").to_parquet(path)
    with pytest.raises(StageError, match=r"train.parquet lacks the columns \['tokens'\]"):
        train_linear.main()
    assert_nothing_written(in_tmp_project)


@pytest.mark.e2e
def test_command_line_prints_one_error_line(frame_project: Path) -> None:
    set_params(frame_project / "params.yaml", {"train_rf.max_depth": 0})
    result = run(
        [sys.executable, "-m", "imdb_sentiment.stages.train_rf"], cwd=frame_project, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: params.yaml: train_rf.max_depth = 0: Input should be greater than or equal to 1"
    ]
    assert "Traceback" not in result.stderr


def lock_hashes(repo: Path) -> dict[str, str]:
    outs = {path for name in ("train_rf", "train_linear") for path in declared_outs(repo)[name]}
    return {path: md5 for path, md5 in lock_outs(repo).items() if path in outs}


@pytest.mark.e2e
def test_dvc_repro_twice_gives_same_model_hashes(project_repo: Path) -> None:
    dvc(project_repo, "repro", "train_rf", "train_linear")
    first = lock_hashes(project_repo)
    assert set(first) == {
        "models/rf",
        "models/linear",
        "metrics/validation/rf.json",
        "metrics/validation/linear.json",
        "summaries/train_rf.json",
        "summaries/train_linear.json",
        "timings/train_rf.json",
        "timings/train_linear.json",
    }
    for name in ("rf", "linear"):
        assert load_classical_model(project_repo / "models" / name)
    dvc(project_repo, "repro", "--force", "--single-item", "train_rf", "train_linear")
    second = lock_hashes(project_repo)
    # Only the timings (the wall-clock fit time) may move: models and metrics must not.
    for path in sorted(first):
        if not path.startswith("timings/"):
            assert second[path] == first[path], path
    shown = json.dumps(json.loads(dvc(project_repo, "metrics", "show", "--json").stdout))
    assert "metrics/validation/rf.json" in shown
    assert "timings/" not in shown and "summaries/" not in shown


def test_nb_evidence_is_cross_fitted_on_train() -> None:
    """The rows the forest trains on are scored with a ratio fitted without them; new rows
    with the ratio fitted on all of train."""
    from imdb_sentiment.classical.features import NBEvidence, log_count_ratio

    rng = np.random.default_rng(0)
    X = (rng.random((60, 30)) < 0.3).astype(np.float32)
    y = np.arange(60) % 2
    evidence = NBEvidence(n_folds=3, random_state=0)
    cross_fitted = evidence.fit_transform(X, y).toarray()
    refit = evidence.transform(X).toarray()
    assert cross_fitted.shape == refit.shape == (60, 4)
    np.testing.assert_allclose(refit[:, 0], X @ log_count_ratio(X, y, 1.0), rtol=1e-5)
    assert not np.allclose(cross_fitted, refit)
    np.testing.assert_array_equal(
        NBEvidence(n_folds=3, random_state=0).fit_transform(X, y).toarray(), cross_fitted
    )


def test_rf_without_selection_or_evidence(frame_project: Path) -> None:
    set_params(
        frame_project / "params.yaml",
        {"train_rf.select_k": None, "train_rf.nb_evidence": False, "train_rf.column": "tokens"},
    )
    train_rf.main()
    metrics = json.loads((frame_project / "metrics/validation/rf.json").read_text())
    summary = json.loads((frame_project / "summaries/train_rf.json").read_text())
    assert metrics["accuracy"] > 0.75
    # Every n-gram of the vocabulary, nothing added.
    pipeline = load_classical_model(frame_project / "models" / "rf")
    assert summary["n_features"] == len(pipeline.named_steps["ngrams"].get_feature_names_out())
