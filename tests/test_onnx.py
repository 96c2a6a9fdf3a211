"""export_onnx and the onnx-int8 backend, on a tiny DistilBERT briefly trained on synthetic
reviews: the fp32 graph gives torch's logits, the int8 graph torch's labels, and every
path cuts, batches and orders reviews as the torch path does."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from evaluate_workspace import fine_tune
from helpers import PROJECT_ROOT, make_reviews, run

from imdb_sentiment.core.errors import StageError, run_stage
from imdb_sentiment.inference import onnx_export
from imdb_sentiment.inference.model_folder import check_same_cut, open_transformer_folder
from imdb_sentiment.inference.onnx_backend import (
    FP32_FILE,
    INT8_FILE,
    OnnxScorer,
    import_onnxruntime,
    load_session,
    onnx_logits,
)
from imdb_sentiment.inference.torch_backend import predict_logits
from imdb_sentiment.stages import export_onnx
from imdb_sentiment.text.cutting import CutParams, read_cut_config
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer

# Cut short, so that some synthetic reviews (up to ~70 tokens) are cut head and tail.
CUT = CutParams(max_length=48, head_tokens=12)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny model after a few training steps, with its tokenizer and cut config."""
    out = tmp_path_factory.mktemp("trained") / "distilbert"
    shutil.copytree(tiny_model_dir, out)
    train = make_reviews(96, seed=11)
    tokenizer = load_tokenizer(str(out), param=None)
    ids = tokenize_texts(train["text"].tolist(), tokenizer, CUT)["input_ids"]
    fine_tune(tiny_model_dir, out, ids, train["label"].tolist())
    (out / "tokenize_config.json").write_text(json.dumps(CUT.model_dump()))
    return out


@pytest.fixture(scope="module")
def exported(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "distilbert-onnx"
    record = onnx_export.export(trained_dir, out, onnx_export.ExportParams())
    (out / "export.json").write_text(json.dumps(record))
    return out


@pytest.fixture(scope="module")
def test_ids(trained_dir: Path) -> list[list[int]]:
    """Held-out synthetic reviews, cut as training cut them."""
    texts = make_reviews(200, seed=99)["text"].tolist()
    tokenizer = load_tokenizer(str(trained_dir), param=None)
    return tokenize_texts(texts, tokenizer, read_cut_config(trained_dir))["input_ids"]


@pytest.fixture(scope="module")
def torch_logits(trained_dir: Path, test_ids: list[list[int]], tiny_tokenizer) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(trained_dir)
    return predict_logits(model, test_ids, tokenizer=tiny_tokenizer, batch_size=16, bf16=False)


def test_export_writes_fused_fp32_and_int8_graphs_with_what_predict_needs(
    exported: Path,
) -> None:
    names = {path.name for path in exported.iterdir()}
    assert {FP32_FILE, INT8_FILE, "config.json", "tokenize_config.json", "export.json"} <= names
    assert {"tokenizer.json", "tokenizer_config.json"} <= names
    # The fused kernels, counted in the saved graph itself (not in the exporter's record).
    import onnx

    graph = onnx.load(str(exported / FP32_FILE)).graph
    kernels = Counter(node.op_type for node in graph.node)
    assert kernels["Attention"] == 2  # both layers' attention in one kernel each
    assert kernels["SkipLayerNormalization"] == 4  # residual add + LayerNorm, twice a layer
    assert kernels["BiasGelu"] + kernels["Gelu"] + kernels["FastGelu"] == 2
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(exported / INT8_FILE)).graph.node}
    assert (exported / INT8_FILE).stat().st_size < (exported / FP32_FILE).stat().st_size / 2


def test_fp32_graph_gives_torchs_logits(
    exported: Path, test_ids: list[list[int]], torch_logits: np.ndarray, tiny_tokenizer
) -> None:
    session = load_session(exported / FP32_FILE)
    logits = onnx_logits(session, test_ids, tokenizer=tiny_tokenizer, batch_size=16)
    # The same sums in another order: 5.8e-6 apart at most on a Xeon with AMX (measured).
    assert np.abs(logits - torch_logits).max() <= 2e-5


def test_int8_graph_gives_torchs_labels_on_most_reviews(
    exported: Path, test_ids: list[list[int]], torch_logits: np.ndarray, tiny_tokenizer
) -> None:
    session = load_session(exported / INT8_FILE)
    logits = onnx_logits(session, test_ids, tokenizer=tiny_tokenizer, batch_size=16)
    agree = float((logits.argmax(1) == torch_logits.argmax(1)).mean())
    # All 200 labels agree on a Xeon with AMX (measured); int8 kernels differ from CPU to
    # CPU, so up to 4 of them may flip.
    assert agree >= 0.98, agree


def test_onnx_scores_come_back_in_input_order_whatever_the_batching(
    exported: Path, test_ids: list[list[int]], tiny_tokenizer
) -> None:
    session = load_session(exported / FP32_FILE)
    few = test_ids[:24]
    one_by_one = np.concatenate(
        [onnx_logits(session, [ids], tokenizer=tiny_tokenizer, batch_size=1) for ids in few]
    )
    batched = onnx_logits(session, few, tokenizer=tiny_tokenizer, batch_size=7)
    assert np.abs(batched - one_by_one).max() <= 1e-5


def test_predict_onnx_backend_cuts_long_reviews_as_training_did(
    exported: Path, trained_dir: Path, tiny_tokenizer
) -> None:
    texts = [" ".join(make_reviews(3, seed=5)["text"])]  # ~100 tokens: cut to 48
    tokenizer = load_tokenizer(str(trained_dir), param=None)
    ids = tokenize_texts(texts, tokenizer, CUT)["input_ids"]
    assert len(ids[0]) == CUT.max_length
    expected = onnx_logits(load_session(exported / INT8_FILE), ids, tokenizer=tiny_tokenizer)
    proba = OnnxScorer(open_transformer_folder(exported, INT8_FILE), batch_size=4).proba(texts)
    odds = np.exp(expected[:, 1] - expected[:, 0])
    np.testing.assert_allclose(proba, odds / (1 + odds), rtol=1e-6)


@pytest.mark.e2e
def test_predict_cli_scores_with_the_int8_model(exported: Path, tmp_path: Path) -> None:
    reviews = ["A superb, moving film.", "Awful and boring, a waste of time."]
    args = [sys.executable, "-m", "imdb_sentiment.cli.predict", "--format", "jsonl"]
    result = run(
        [*args, "--backend", "onnx-int8", "--model-dir", str(exported), *reviews], cwd=tmp_path
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    proba = OnnxScorer(open_transformer_folder(exported, INT8_FILE), batch_size=2).proba(reviews)
    assert [row["p_positive"] for row in rows] == [round(float(p), 6) for p in proba]
    refused = run([*args, "--backend", "onnx-int8", "--model", "rf", "x"], tmp_path, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --backend onnx-int8 runs distilbert only, not --model rf"
    )


def test_evaluate_refuses_an_export_of_a_model_trained_on_other_cuts(
    exported: Path, tmp_path: Path, test_ids: list[list[int]]
) -> None:
    other = CutParams(max_length=64, head_tokens=16)
    (tmp_path / "tokenize_config.json").write_text(json.dumps(other.model_dump()))
    folder = open_transformer_folder(exported, INT8_FILE)
    with pytest.raises(StageError, match="was trained on ids cut otherwise than"):
        check_same_cut(folder, tmp_path)
    (tmp_path / "tokenize_config.json").write_text(
        json.dumps({**CUT.model_dump(), "batch_size": 7})
    )
    check_same_cut(folder, tmp_path)
    proba = OnnxScorer(folder, batch_size=16).score(test_ids)
    assert proba.shape == (len(test_ids),)


def test_a_model_type_the_optimiser_does_not_fuse_fails_in_one_line(
    trained_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy2(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(trained_dir, tmp_path / "models/distilbert")
    config_file = tmp_path / "models/distilbert/config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "model_type": "xlnet"}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        run_stage(export_onnx.main)
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: models/distilbert: model_type 'xlnet' is not one ONNX Runtime's transformer "
        "optimiser fuses here (supported: distilbert, bert)"
    ]
    assert not (tmp_path / "models/distilbert-onnx").exists()


def test_without_onnxruntime_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(StageError, match=r"^ONNX Runtime is not installed: pip install -e"):
        import_onnxruntime()


def test_auto_backend_measures_both_graphs_once_and_keeps_its_answer(
    trained_dir: Path, exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real probe (tests/test_auto_backend.py stubs it): both backends score the seeded
    batch, and the answer with its measured ratio is kept for the next command."""
    from imdb_sentiment.inference import auto_backend

    monkeypatch.setenv(auto_backend.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(auto_backend, "uses_bf16", lambda device, bf16: False)
    seconds = auto_backend.measure(trained_dir, exported)
    assert set(seconds) == {"torch", "onnx-int8"} and min(seconds.values()) > 0
    chosen = auto_backend.choose_backend(trained_dir, exported, device="cpu")
    [kept] = json.loads((tmp_path / auto_backend.CACHE_NAME).read_text()).values()
    assert kept["backend"] == chosen and kept["int8_vs_torch"] > 0
    assert chosen == ("onnx-int8" if kept["int8_vs_torch"] >= auto_backend.INT8_MARGIN else "torch")
