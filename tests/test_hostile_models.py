"""Hostile model folders and model files: code of their own, crafted or damaged skops
archives, a truncated safetensors file, an empty tokenizer folder, a cut longer than the
model's positions. Each must end in one `error:` line naming the file or param and exit
status 1 (never a traceback, a crash or a hang), and change nothing on disk.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evaluate_workspace import tiny_classical_pipeline
from helpers import make_reviews, subprocess_env
from hostile_workspace import (
    CRAFT_TIMEOUT,
    REVIEW,
    assert_one_error,
    build_small_workspace,
    call_predict,
    error_lines,
    run_predict,
    snapshot,
)

from imdb_sentiment.classical.store import MODEL_FILE, load_classical_model, save_classical_model
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.transformer.loading import TOKENIZER_FILES, load_classifier, load_tokenizer


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_small_workspace(tmp_path_factory.mktemp("hostile-models") / "ws", tiny_model_dir)


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


# --- model folders that name code of their own ---------------------------------------------

EVIL_CODE = """import pathlib
pathlib.Path({sentinel!r}).write_text("the model folder's code ran")
from transformers import DistilBertConfig as EvilConfig
from transformers import DistilBertForSequenceClassification as EvilModel
from transformers import PreTrainedTokenizerFast as EvilTokenizer
"""


def evil_folder(workspace: Path, name: str, config_name: str, auto_map: dict) -> Path:
    """A copy of the DistilBERT folder whose `config_name` maps its classes to evil.py, a
    module that writes a sentinel file when it is imported."""
    folder = workspace / "hostile" / name
    shutil.copytree(workspace / "models" / "distilbert", folder)
    sentinel = workspace.parent / f"SENTINEL-{name}"
    (folder / "evil.py").write_text(EVIL_CODE.format(sentinel=str(sentinel)), encoding="utf-8")
    config = json.loads((folder / config_name).read_text(encoding="utf-8"))
    config["auto_map"] = auto_map
    (folder / config_name).write_text(json.dumps(config), encoding="utf-8")
    return folder


MODEL_AUTO_MAP = {
    "AutoConfig": "evil.EvilConfig",
    "AutoModelForSequenceClassification": "evil.EvilModel",
}
TOKENIZER_AUTO_MAP = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}


@pytest.mark.e2e
def test_predict_refuses_a_model_folder_that_runs_its_own_code(workspace: Path) -> None:
    """Answering `y` on stdin (as transformers would ask) runs nothing."""
    evil = evil_folder(workspace, "evil-predict", "config.json", MODEL_AUTO_MAP)
    before = snapshot(workspace)
    result = run_predict(["--model-dir", str(evil), REVIEW], workspace, input=b"y\ny\n")
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert_one_error(
        stderr,
        f"error: {evil}: config.json names code of its own (auto_map); this project never "
        "runs code from a model folder",
    )
    assert result.stdout == b""
    assert not (workspace.parent / "SENTINEL-evil-predict").exists()
    assert snapshot(workspace) == before


@pytest.mark.parametrize(
    ("config_name", "auto_map", "loaders"),
    [
        ("config.json", MODEL_AUTO_MAP, ("classifier", "tokenizer")),
        ("tokenizer_config.json", TOKENIZER_AUTO_MAP, ("tokenizer",)),
    ],
)
def test_hub_loading_refuses_code_in_a_model_folder(
    workspace: Path, config_name: str, auto_map: dict, loaders: tuple[str, ...]
) -> None:
    name = f"evil-hub-{config_name.split('.')[0]}"
    evil = evil_folder(workspace, name, config_name, auto_map)
    before = snapshot(workspace)
    load = {"classifier": load_classifier, "tokenizer": load_tokenizer}
    for loader in loaders:
        with pytest.raises(StageError) as error:
            load[loader](str(evil))
        assert str(error.value) == (
            f"model.name={str(evil)!r}: {config_name} names code of its own (auto_map); "
            "this project never runs code from a model folder"
        )
    assert not (workspace.parent / f"SENTINEL-{name}").exists()
    assert "evil" not in sys.modules
    assert snapshot(workspace) == before


def test_a_config_that_is_not_an_object_is_one_line(workspace: Path) -> None:
    folder = workspace / "hostile" / "config-list"
    shutil.copytree(workspace / "models" / "distilbert", folder)
    (folder / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    before = snapshot(workspace)
    with pytest.raises(StageError) as error:
        load_classifier(str(folder))
    assert str(error.value) == f"model.name={str(folder)!r}: config.json is not a JSON object"
    assert snapshot(workspace) == before


# --- crafted or damaged skops files ---------------------------------------------------------


def corrupt_first_tree(model_dir: Path, out_dir: Path, edit: Callable[[np.ndarray], None]) -> Path:
    """Save the rf pipeline of `model_dir` with its first tree's node array edited: a file
    built from trusted types only, through sklearn's own Tree state."""
    pipeline = load_classical_model(model_dir)
    tree = pipeline.steps[-1][1].estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    edit(nodes)
    state["nodes"] = nodes
    tree.__setstate__(state)
    save_classical_model(pipeline, out_dir)
    return out_dir


def first_inner(nodes: np.ndarray, rank: int = 0) -> int:
    return int(np.flatnonzero(nodes["left_child"] != -1)[rank])


def rewrite_archive(
    source: Path,
    out_dir: Path,
    edit_schema: Callable[[Any], Any] | None = None,
    schema_text: Callable[[str], str] | None = None,
    members: dict[str, bytes] | None = None,
) -> Path:
    """Copy the skops archive `source` into `out_dir`, its schema.json edited (as JSON by
    `edit_schema`, or as text by `schema_text`) and the named members replaced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as archive:
        text = archive.read("schema.json").decode("utf-8")
        if edit_schema is not None:
            text = json.dumps(edit_schema(json.loads(text)))
        if schema_text is not None:
            text = schema_text(text)
        with zipfile.ZipFile(out_dir / MODEL_FILE, "w") as out:
            for name in archive.namelist():
                if name != "schema.json":
                    out.writestr(name, (members or {}).get(name, archive.read(name)))
            out.writestr("schema.json", text)
    return out_dir


def find_node(schema: Any, match: Callable[[dict], bool]) -> dict:
    """The first dict of the schema (depth first) that `match` accepts."""
    stack = [schema]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if match(item):
                return item
            stack[:0] = list(item.values())
        elif isinstance(item, list):
            stack[:0] = item
    raise AssertionError("no such node in the schema")


def with_protocol(protocol: int) -> Callable[[dict], dict]:
    def edit(schema: dict) -> dict:
        schema["protocol"] = protocol
        return schema

    return edit


def with_unknown_loader(schema: dict) -> dict:
    schema["__loader__"] = "EvilNode"
    return schema


def with_untrusted_type(schema: dict) -> dict:
    node = find_node(schema, lambda n: n.get("__class__") == "NBLogCountRatio")
    node["__module__"], node["__class__"] = "os", "system"
    return schema


def deeply_nested(text: str) -> str:
    """The pipeline's `memory` (null) replaced by a list nested 100,000 deep."""
    schema = json.loads(text)
    schema["content"]["content"]["memory"] = "NESTED"
    level = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": ['
    return json.dumps(schema).replace('"NESTED"', level * 100_000 + "]}" * 100_000)


def duplicate_terms(source: Path) -> dict[str, bytes]:
    """A PresenceVectorizer's term ends edited so that two terms decode alike: its rebuilt
    vocabulary then holds a column index past its size."""
    with zipfile.ZipFile(source) as archive:
        schema = json.loads(archive.read("schema.json"))
        ends_node = find_node(schema, lambda n: "vocabulary_ends_" in n)["vocabulary_ends_"]
        member = ends_node["file"]
        ends = np.load(io.BytesIO(archive.read(member)))
    ends[1] = ends[2] = ends[0]
    buffer = io.BytesIO()
    np.save(buffer, ends)
    return {member: buffer.getvalue()}


def craft_models(workspace: Path) -> dict[str, tuple[str, Path, str]]:
    """Every crafted model: name -> (--model, folder, the message after `FILE`)."""
    rf, linear = workspace / "models" / "rf", workspace / "models" / "linear"
    base = workspace / "hostile" / "skops"

    def set_left(rank: int, value: Callable[[int], int]) -> Callable[[np.ndarray], None]:
        def edit(nodes: np.ndarray) -> None:
            node = first_inner(nodes, rank)
            nodes["left_child"][node] = value(node)

        return edit

    def set_feature(nodes: np.ndarray) -> None:
        nodes["feature"][first_inner(nodes)] = 10**9

    count_vectorizer = load_classical_model(workspace / "models" / "linear-words")
    vectorizer = count_vectorizer.steps[0][1].transformers_[0][1]
    vectorizer.vocabulary_["superb"] = 10**8
    save_classical_model(count_vectorizer, base / "vocabulary-index")
    sparse = load_classical_model(workspace / "models" / "linear-words")
    sparse.steps[-1][1].sparsify()
    sparse.steps[-1][1].coef_.indices[0] = 10**8
    save_classical_model(sparse, base / "sparse-index")
    from imdb_sentiment.classical import forest

    unfitted = forest.build_pipeline(forest.RFParams(), seed=0)
    save_classical_model(unfitted, base / "unfitted")
    (base / "not-a-zip").mkdir()
    (base / "not-a-zip" / MODEL_FILE).write_bytes(b"PK\x03\x04 but nothing after it")

    rf_file, linear_file = rf / MODEL_FILE, linear / MODEL_FILE
    cases = {
        "child-out-of-range": (
            "rf",
            corrupt_first_tree(rf, base / "child", set_left(0, lambda _: 10**9)),
            "a tree's child index is out of range",
        ),
        "child-loops-back": (
            "rf",
            corrupt_first_tree(rf, base / "loop", set_left(1, lambda node: node)),
            "a tree's child index points backwards",
        ),
        "feature-out-of-range": (
            "rf",
            corrupt_first_tree(rf, base / "feature", set_feature),
            "a tree's feature index is out of range",
        ),
        "vocabulary-index": (
            "linear",
            base / "vocabulary-index",
            "a vectorizer's vocabulary columns are not 0..n-1",
        ),
        "duplicate-terms": (
            "linear",
            rewrite_archive(linear_file, base / "terms", members=duplicate_terms(linear_file)),
            "a vectorizer's vocabulary columns are not 0..n-1",
        ),
        "sparse-index": ("linear", base / "sparse-index", "the model is malformed ("),
        "deep-nesting": (
            "rf",
            rewrite_archive(rf_file, base / "deep", schema_text=deeply_nested),
            " is nested too deeply to be a model",
        ),
        "unknown-loader": (
            "rf",
            rewrite_archive(rf_file, base / "loader", edit_schema=with_unknown_loader),
            " is not a valid skops model (TypeError: Can't find loader EvilNode",
        ),
        "schema-a-list": (
            "rf",
            rewrite_archive(rf_file, base / "list", edit_schema=lambda schema: [schema]),
            "schema.json is a list, not an object",
        ),
        "protocol-999": (
            "rf",
            rewrite_archive(rf_file, base / "protocol", edit_schema=with_protocol(999)),
            " is not a valid skops model (ValueError: The file was saved with skops protocol 999",
        ),
        "untrusted-type": (
            "linear",
            rewrite_archive(linear_file, base / "untrusted", edit_schema=with_untrusted_type),
            " holds types that are not trusted: ['os.system']",
        ),
        "unfitted": ("rf", base / "unfitted", "the pipeline is not fitted ("),
        "not-a-zip": ("rf", base / "not-a-zip", " is not a skops model archive ("),
    }
    return cases


@pytest.fixture(scope="module")
def crafted(workspace: Path) -> dict[str, tuple[str, Path, str]]:
    # A pipeline over plain CountVectorizers (their vocabulary is saved as a dict of
    # column indices) and LogisticRegression, both trusted types.
    frame = make_reviews(60, seed=3).assign(tokens=lambda f: f["text"].str.lower())
    words = tiny_classical_pipeline("linear").fit(frame[["text", "tokens"]], frame["label"])
    save_classical_model(words, workspace / "models" / "linear-words")
    return craft_models(workspace)


def expected_message(model_dir: Path, tail: str) -> str:
    separator = "" if tail.startswith(" ") else ": "
    return f"{model_dir / MODEL_FILE}{separator}{tail}"


CASES = [
    "child-out-of-range",
    "child-loops-back",
    "feature-out-of-range",
    "vocabulary-index",
    "duplicate-terms",
    "sparse-index",
    "deep-nesting",
    "unknown-loader",
    "schema-a-list",
    "protocol-999",
    "untrusted-type",
    "unfitted",
    "not-a-zip",
]


@pytest.mark.parametrize("case", CASES)
def test_load_classical_model_refuses_a_crafted_file(
    workspace: Path, crafted: dict, case: str
) -> None:
    _, model_dir, tail = crafted[case]
    before = snapshot(workspace)
    with pytest.raises(StageError) as error:
        load_classical_model(model_dir)
    assert str(error.value).startswith(expected_message(model_dir, tail))
    assert "\n" not in str(error.value)
    assert snapshot(workspace) == before


# Runs predict on every crafted file in one child process (one import of the libraries):
# a crash or a hang there ends that process, not the test session, and names the case.
PREDICT_EACH = """
import contextlib, io, json, sys
from imdb_sentiment.cli import predict
cases = json.loads(sys.argv[1])
results = {}
for name, argv in cases.items():
    print("case", name, flush=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            predict.main(argv)
            status = 0
        except SystemExit as exit_info:
            status = exit_info.code
    results[name] = [status, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


def test_predict_on_crafted_model_files_is_one_line_never_a_crash(
    workspace: Path, crafted: dict, tiny_model_dir: Path
) -> None:
    cases = {
        name: ["--model", kind, "--model-dir", str(folder), REVIEW, "A dull and boring film."]
        for name, (kind, folder, _) in crafted.items()
    }
    before = snapshot(workspace)
    result = subprocess.run(
        [sys.executable, "-c", PREDICT_EACH, json.dumps(cases)],
        cwd=workspace,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=CRAFT_TIMEOUT,
    )
    last_case = [line for line in result.stdout.splitlines() if line.startswith("case ")][-1:]
    assert result.returncode == 0, f"crashed ({result.returncode}) in {last_case}: {result.stderr}"
    results = json.loads(result.stdout.splitlines()[-1])
    assert set(results) == set(CASES)
    for name, (status, out, err) in results.items():
        _, folder, tail = crafted[name]
        assert status == 1 and out == "", (name, err)
        assert_one_error(err, f"error: {expected_message(folder, tail)}")
    assert snapshot(workspace) == before


def test_a_model_that_fails_while_scoring_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Arrays of a shape the pipeline cannot multiply load fine but fail when it scores."""
    pipeline = load_classical_model(in_workspace / "models" / "linear")
    logreg = pipeline.steps[-1][1]
    logreg.coef_ = copy.deepcopy(logreg.coef_[:, :3])
    folder = in_workspace / "hostile" / "coef-shape"
    save_classical_model(pipeline, folder)
    before = snapshot(in_workspace)
    status, out, err = call_predict(
        ["--model", "linear", "--model-dir", str(folder), REVIEW], capsys
    )
    assert status == 1 and out == ""
    assert_one_error(
        err, f"error: {folder / MODEL_FILE}: the model cannot score reviews (ValueError: "
    )
    assert snapshot(in_workspace) == before


# --- damaged transformer folders -------------------------------------------------------------


def distilbert_copy(workspace: Path, name: str) -> Path:
    folder = workspace / "hostile" / name
    if not folder.exists():
        shutil.copytree(workspace / "models" / "distilbert", folder)
    return folder


def test_a_truncated_safetensors_file_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = distilbert_copy(in_workspace, "truncated")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model-dir", str(folder), REVIEW], capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: {folder}: cannot load the model (")
    with pytest.raises(StageError, match=r"^model.name='.*truncated': cannot load the model \("):
        load_classifier(str(folder))
    assert snapshot(in_workspace) == before


def test_an_empty_tokenizer_folder_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = in_workspace / "hostile" / "empty-tokenizer"
    empty.mkdir(parents=True, exist_ok=True)
    files = ", ".join(TOKENIZER_FILES)
    with pytest.raises(StageError) as error:
        load_tokenizer(str(empty))
    assert str(error.value) == f"model.name={str(empty)!r}: no tokenizer there (none of {files})"
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model", "rf", "--tokenizer", str(empty), REVIEW], capsys)
    assert status == 1 and out == ""
    assert_one_error(
        err, f"error: --tokenizer={str(empty)!r}: no tokenizer there (none of {files})"
    )
    assert snapshot(in_workspace) == before


def test_a_cut_longer_than_the_model_positions_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = distilbert_copy(in_workspace, "too-long")
    cut = {"max_length": 1024, "truncation": "head_tail", "head_tokens": 128}
    (folder / "tokenize_config.json").write_text(json.dumps(cut), encoding="utf-8")
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model-dir", str(folder), REVIEW], capsys)
    assert status == 1 and out == ""
    assert_one_error(
        err,
        f"error: {folder / 'tokenize_config.json'}: max_length 1024 exceeds the model's "
        "512 positions",
    )
    assert snapshot(in_workspace) == before


def test_a_tokenizer_larger_than_the_model_vocabulary_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ids past the embedding table: refused before any review is scored."""
    folder = distilbert_copy(in_workspace, "big-vocabulary")
    (folder / "tokenizer.json").unlink(missing_ok=True)  # rebuilt from vocab.txt
    with open(folder / "vocab.txt", "a", encoding="utf-8") as vocab:
        vocab.writelines(f"extra{index}\n" for index in range(50))
    before = snapshot(in_workspace)
    status, out, err = call_predict(["--model-dir", str(folder), "extra3 extra7"], capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: {folder}: its tokenizer has ")
    assert snapshot(in_workspace) == before


# --- folders checked whole: the vocabulary, the special tokens, the labels, the graph -------


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    edit(content)
    path.write_text(json.dumps(content), encoding="utf-8")


def without_vocabulary(folder: Path) -> None:
    """tokenizer_config.json alone: transformers would build a tokenizer of the 5 special
    tokens, which reads every word as [UNK] (0.52 for every review)."""
    for name in ("tokenizer.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)


def only_special_tokens(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")


def cls_outside_the_vocabulary(folder: Path) -> None:
    """tokenizer.json frames each text with an id the vocabulary lacks (a generic fast
    tokenizer takes its framing from there)."""

    def edit(tokenizer: dict) -> None:
        tokenizer["post_processor"]["special_tokens"]["[CLS]"]["ids"] = [99999]

    edit_json(folder / "tokenizer.json", edit)
    edit_json(
        folder / "tokenizer_config.json",
        lambda config: config.update(tokenizer_class="PreTrainedTokenizerFast"),
    )


def padding_past_the_embeddings(folder: Path) -> None:
    """A padding token the vocabulary lacks: the tokenizer adds it, one id past the model's
    embedding table."""
    edit_json(folder / "tokenizer_config.json", lambda config: config.update(pad_token="[NEW]"))


def three_labels(folder: Path) -> None:
    def edit(config: dict) -> None:
        config["id2label"] = {"0": "NEGATIVE", "1": "POSITIVE", "2": "NEUTRAL"}
        config["label2id"] = {"NEGATIVE": 0, "POSITIVE": 1, "NEUTRAL": 2}

    edit_json(folder / "config.json", edit)


FOLDER_CASES = {
    "no-vocabulary": (without_vocabulary, "{folder}: no tokenizer there (none of "),
    "only-special-tokens": (
        only_special_tokens,
        "{folder}: its tokenizer holds only its 5 special tokens, no vocabulary",
    ),
    "cls-outside": (
        cls_outside_the_vocabulary,
        "{folder}: its frame[0] token id 99999 is not in its vocabulary",
    ),
    "padding-past-embeddings": (
        padding_past_the_embeddings,
        "{folder}: its tokenizer has 179 tokens (ids up to 178), more than the model's 178",
    ),
    "three-labels": (three_labels, "{folder}: its labels are {{0: 'NEGATIVE', 1: 'POSITIVE', "),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", FOLDER_CASES)
def test_a_folder_checked_whole_before_any_review_is_scored(
    in_workspace: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    damage, message = FOLDER_CASES[case]
    folder = distilbert_copy(in_workspace, f"whole-{case}")
    damage(folder)
    (folder / "model.int8.onnx").write_bytes(b"never read: the folder fails first")
    before = snapshot(in_workspace)
    for backend in ("torch", "onnx-int8"):
        argv = ["--model-dir", str(folder), "--backend", backend, REVIEW]
        status, out, err = call_predict(argv, capsys)
        assert status == 1 and out == "", err
        assert_one_error(err, "error: " + message.format(folder=folder))
    assert snapshot(in_workspace) == before


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["no-vocabulary", "only-special-tokens", "cls-outside"])
def test_the_tokenize_stage_checks_its_tokenizer_the_same_way(
    workspace: Path,
    in_tmp_project: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    from helpers import set_params

    from imdb_sentiment.core.errors import run_stage
    from imdb_sentiment.stages import tokenize

    damage, message = FOLDER_CASES[case]
    folder = distilbert_copy(workspace, f"tokenize-{case}")
    damage(folder)
    set_params(in_tmp_project / "params.yaml", {"model.name": str(folder)})
    with pytest.raises(SystemExit) as exited:
        run_stage(tokenize.main)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    label = f"model.name={str(folder)!r}"
    assert_one_error(err, "error: " + message.format(folder=label))
    assert not (in_tmp_project / "data").exists()


def tiny_graph(
    path: Path, labels: int | None, inputs: tuple[str, ...] = ("input_ids", "attention_mask")
) -> Path:
    """An ONNX graph that reads `inputs` and returns `logits` of `labels` columns; None: as
    many columns as the review has tokens, a width that shows only when the graph runs."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", [inputs[0]], ["as_float"], to=TensorProto.FLOAT)]
    initializers = []
    if labels is None:
        nodes.append(helper.make_node("Identity", ["as_float"], ["logits"]))
    else:
        nodes.append(helper.make_node("ReduceMean", ["as_float"], ["mean"], keepdims=1, axes=[1]))
        nodes.append(helper.make_node("MatMul", ["mean", "weights"], ["logits"]))
        weights = helper.make_tensor("weights", TensorProto.FLOAT, [1, labels], [0.1] * labels)
        initializers.append(weights)
    graph = helper.make_graph(
        nodes,
        "hostile",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "length"])
            for name in inputs
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels or "n"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


GRAPH_CASES = {
    "three-logits": (
        3,
        ("input_ids", "attention_mask"),
        "the graph's logits have shape ['batch', 3], not (reviews, 2)",
    ),
    "one-logit": (
        1,
        ("input_ids", "attention_mask"),
        "the graph's logits have shape ['batch', 1], not (reviews, 2)",
    ),
    "other-inputs": (
        2,
        ("input_ids", "token_type_ids"),
        "the graph reads ['input_ids', 'token_type_ids'], not ['input_ids', 'attention_mask']",
    ),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", GRAPH_CASES)
def test_an_onnx_graph_of_other_labels_or_inputs_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    labels, inputs, tail = GRAPH_CASES[case]
    folder = distilbert_copy(in_workspace, f"graph-{case}")
    graph = tiny_graph(folder / "model.int8.onnx", labels, inputs)
    before = snapshot(in_workspace)
    argv = ["--model-dir", str(folder), "--backend", "onnx-int8", REVIEW]
    status, out, err = call_predict(argv, capsys)
    assert status == 1 and out == ""
    assert_one_error(err, f"error: {graph}: {tail}")
    assert snapshot(in_workspace) == before


@pytest.mark.timeout(300)
def test_a_graph_whose_width_shows_only_when_it_runs_is_one_line(
    in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = distilbert_copy(in_workspace, "graph-symbolic")
    tiny_graph(folder / "model.int8.onnx", None)
    status, out, err = call_predict(
        ["--model-dir", str(folder), "--backend", "onnx-int8", "Dull.", "So dull."], capsys
    )
    assert status == 1 and out == ""
    assert_one_error(err, "error: the ONNX graph returned logits of shape (2, ")
    assert error_lines(err)[0].endswith(" for 2 reviews, not (2, 2)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["fifo", "link-loop", "link-to-a-device"])
def test_a_model_folder_holding_what_is_not_a_file_is_one_line_never_a_hang(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """transformers would open a FIFO named like one of its files and wait for a writer."""
    import os

    folder = tmp_path / "distilbert"
    shutil.copytree(workspace / "models" / "distilbert", folder)
    odd = folder / "special_tokens_map.json"
    if kind == "fifo":
        os.mkfifo(odd)
    elif kind == "link-loop":
        odd.symlink_to(folder / "loop")
        (folder / "loop").symlink_to(odd)
    else:
        odd.symlink_to(os.devnull)
    expected = {"fifo": "a FIFO", "link-loop": "a link that loops"}.get(kind, "a character device")
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        status, out, err = call_predict(["--model-dir", str(folder), REVIEW], capsys)
    finally:
        os.chdir(cwd)
    assert status == 1 and out == ""
    [line] = error_lines(err)
    assert line.endswith(f": {expected}, not a regular file") and str(folder) in line, line
    with pytest.raises(StageError, match=f"{expected}, not a regular file"):
        load_tokenizer(str(folder))
