"""params.yaml as a careless or hostile user writes it: every bad value ends in one
`error:` line naming the exact key and what is valid, before the stage does any work."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import PROJECT_ROOT, set_params, write_parquet_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdb_sentiment.core.errors import run_stage
from imdb_sentiment.core.params import load_params, load_section
from imdb_sentiment.scoring.cluster import ScoreParams
from imdb_sentiment.stages import (
    evaluate,
    export_onnx,
    prepare,
    train_distilbert,
    train_linear,
    train_rf,
)
from imdb_sentiment.text.reviews import PredictParams


def error_line(capsys: pytest.CaptureFixture[str], main: Any) -> str:
    """Run `main` as a stage; check it failed with exactly one line on stderr; return it."""
    with pytest.raises(SystemExit) as exited:
        run_stage(main)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    return err[0]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trian:\n  learning_rate: 1.0\n", "unknown key 'trian' (did you mean train_rf?)"),
        ("sed: 3\n", "unknown key 'sed' (did you mean seed?)"),
        ("- a\n- b\n", "must hold a mapping of sections, got list"),
        ("seed: [1\n", "is not valid YAML"),
    ],
)
def test_a_misspelled_or_broken_file_names_the_problem(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (in_tmp_project / "params.yaml").write_text(text)
    before = tree(in_tmp_project)
    line = error_line(capsys, prepare.main)
    assert message in line, line
    assert tree(in_tmp_project) == before


def test_params_that_are_not_utf8_or_a_folder(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp_project / "params.yaml").write_bytes(b"seed: 42\ndata:\n  source: caf\xe9\n")
    assert "params.yaml is not UTF-8 text" in error_line(capsys, prepare.main)
    (in_tmp_project / "params.yaml").unlink()
    (in_tmp_project / "params.yaml").mkdir()
    assert "params.yaml is a folder" in error_line(capsys, prepare.main)


@pytest.mark.parametrize(
    ("main", "updates", "message"),
    [
        (prepare.main, {"seed": True}, "params.yaml: seed = True: Input should be a valid integer"),
        (
            train_rf.main,
            {"train_rf.n_estimators": "20"},
            "params.yaml: train_rf.n_estimators = '20': Input should be a valid integer",
        ),
        (
            train_rf.main,
            {"train_rf.n_estimatorz": 20},
            "unknown key train_rf.n_estimatorz (did you mean n_estimators?)",
        ),
        (
            train_linear.main,
            {"train_linear.char_ngrams": [4, 2]},
            "train_linear.char_ngrams = [4, 2]: must be [min, max]",
        ),
        (
            prepare.main,
            {"prepare.clean_html": "yes"},
            "params.yaml: prepare.clean_html = 'yes': Input should be a valid boolean",
        ),
        (
            train_distilbert.main,
            {"train_distilbert.learning_rate": "5e-5"},
            "train_distilbert.learning_rate = '5e-5': Input should be a valid number",
        ),
        (
            evaluate.main,
            {"evaluate.device": "meta"},
            "evaluate.device = 'meta': cannot score on meta (valid: auto, cpu, cuda or cuda:N)",
        ),
        (evaluate.main, {"evaluate.device": "cuda:7"}, "evaluate.device = 'cuda:7'"),
        (evaluate.main, {"evaluate.device": "gpu"}, "evaluate.device = 'gpu': not a device"),
    ],
)
def test_types_are_strict_and_the_exact_key_is_named(
    in_tmp_project: Path,
    capsys: pytest.CaptureFixture[str],
    main: Any,
    updates: dict,
    message: str,
) -> None:
    # No data and no models here: each stage must stop on its params alone.
    set_params(in_tmp_project / "params.yaml", updates)
    before = tree(in_tmp_project)
    line = error_line(capsys, main)
    assert line.startswith(f"error: {message}") or message in line, line
    assert tree(in_tmp_project) == before


def test_head_tokens_follows_max_length(in_tmp_project: Path) -> None:
    from imdb_sentiment.text.tokenizing import TokenizeParams

    assert TokenizeParams(max_length=128).head_tokens == 32
    assert TokenizeParams().head_tokens == 128
    assert TokenizeParams(max_length=128, head_tokens=10).head_tokens == 10


# ---------------------------------------------------------------- any value in any key

YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in leaf_keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


PARAM_KEYS = leaf_keys(load_params(PROJECT_ROOT / "params.yaml"))
# The stage whose main() reads a key (the slow ones stop before their data is read, since
# the workspace holds none: every value is still validated by the stage's own code).
READER = {
    "seed": prepare.main,
    "data": prepare.main,
    "prepare": prepare.main,
    "model": train_distilbert.main,
    "tokenize": prepare.main,  # tokenize's schema: see below
    "train_rf": train_rf.main,
    "train_linear": train_linear.main,
    "train_distilbert": train_distilbert.main,
    "export_onnx": export_onnx.main,
    "evaluate": evaluate.main,
    # The commands' sections, read as predict and score read them.
    "predict": lambda: load_section(load_params(), "predict", PredictParams),
    "score": lambda: load_section(load_params(), "score", ScoreParams),
}


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    write_parquet_source(root / "source", n_train=24, n_test=8)
    return root


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=st.sampled_from(PARAM_KEYS), value=YAML_VALUES)
def test_any_value_in_any_key_validates_or_fails_in_one_line(
    fuzz_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: str,
    value: Any,
) -> None:
    from imdb_sentiment.text.tokenizing import TokenizeParams

    work = fuzz_root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copy2(PROJECT_ROOT / "params.yaml", work / "params.yaml")
    set_params(work / "params.yaml", {"data.source": str(fuzz_root / "source"), key: value})
    monkeypatch.chdir(work)
    section = key.split(".")[0]

    def main() -> None:
        if section == "tokenize":
            load_section(load_params(), "tokenize", TokenizeParams)
        else:
            READER[section]()

    try:
        run_stage(main)
    except SystemExit as exited:
        assert exited.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err and err[-1].startswith("error: "), err
        assert not any("Traceback" in line for line in err), err
    else:
        capsys.readouterr()
