"""params.yaml as a careless or hostile user writes it: every bad value ends in one
`error:` line naming the exact key and what is valid, before the stage does any work."""

from __future__ import annotations

import os
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


# --- bounded: size, aliases, nesting, what is not a file; every float finite ---------------

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{LAUGHS}seed: *i\n", "holds more than 100,000 values once its aliases are expanded"),
        (f"{LAUGHS}train_rf:\n  n_estimators: *i\n", "once its aliases are expanded"),
        ("seed: &loop [*loop]\n", "an alias refers to the value that holds it"),
        ("data: &d {source: *d}\n", "an alias refers to the value that holds it"),
        ("seed: " + "[" * 5000 + "]" * 5000 + "\n", "is not valid YAML: nested too deeply"),
        ("seed: 1\n" + "# padding\n" * 120_000, "larger than 1,000,000 bytes"),
    ],
    ids=[
        "billion-laughs",
        "laughs-in-a-section",
        "self-alias",
        "self-alias-mapping",
        "deep",
        "huge",
    ],
)
def test_a_params_file_that_would_cost_memory_or_time_is_one_line(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    (in_tmp_project / "params.yaml").write_text(text)
    before = tree(in_tmp_project)
    line = error_line(capsys, prepare.main)
    assert message in line and len(line) < 400, line
    assert tree(in_tmp_project) == before


def test_aliases_within_the_limit_still_work(in_tmp_project: Path) -> None:
    (in_tmp_project / "params.yaml").write_text(
        "seed: &s 7\nprepare: &p {validation_size: 0.2}\ntokenize: {max_length: 64}\n"
        "evaluate: {n_errors: *s}\n"
    )
    params = load_params(in_tmp_project / "params.yaml")
    assert params["seed"] == 7 and params["evaluate"] == {"n_errors": 7}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "link-loop"])
def test_a_params_file_that_is_not_a_file_is_one_line(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """A FIFO would wait for a writer forever."""
    params = in_tmp_project / "params.yaml"
    params.unlink()
    if kind == "fifo":
        os.mkfifo(params)
    else:
        params.symlink_to(in_tmp_project / "loop")
        (in_tmp_project / "loop").symlink_to(params)
    expected = "a FIFO" if kind == "fifo" else "a link that loops"
    assert f"params.yaml is {expected}, not a YAML file" in error_line(capsys, prepare.main)


def test_an_error_shows_a_huge_value_cut_short(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_params(in_tmp_project / "params.yaml", {"seed": ["x" * 10_000] * 50})
    line = error_line(capsys, prepare.main)
    assert line.startswith("error: params.yaml: seed = ['xxxx") and len(line) < 300, line
    (in_tmp_project / "params.yaml").write_text(f"? {'k' * 100_000}\n: 1\n")  # a long key
    line = error_line(capsys, prepare.main)
    assert "unknown key 'kkkk" in line and len(line) < 500, line


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize(
    ("main", "key"),
    [
        (train_distilbert.main, "train_distilbert.num_train_epochs"),
        (train_distilbert.main, "train_distilbert.learning_rate"),
        (train_linear.main, "train_linear.C"),
        (train_linear.main, "train_linear.nb_alpha"),
        (train_rf.main, "train_rf.nb_alpha"),
        (export_onnx.main, "export_onnx.tolerance"),
        (prepare.main, "prepare.validation_size"),
    ],
)
def test_every_float_is_finite(
    in_tmp_project: Path, capsys: pytest.CaptureFixture[str], main: Any, key: str, value: str
) -> None:
    """`.inf` epochs or C would end in a traceback; an infinite export tolerance would
    make the export's check pass whatever the graph computes."""
    section, name = key.split(".")
    params = in_tmp_project / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace(f"\n{section}:\n", f"\n{section}:\n  {name}: {value}\n", 1))
    params.write_text(_without_duplicate(params.read_text(), section, name))
    line = error_line(capsys, main)
    assert line.startswith(f"error: params.yaml: {key} = ") and "finite number" in line, line


def _without_duplicate(text: str, section: str, name: str) -> str:
    """params.yaml with only the first `name:` line of `section` (the one just added)."""
    lines, seen, current = [], False, None
    for line in text.splitlines(keepends=True):
        if line and not line.startswith((" ", "#", "\n")):
            current = line.split(":")[0]
        if current == section and line.startswith(f"  {name}:"):
            if seen:
                continue
            seen = True
        lines.append(line)
    return "".join(lines)
