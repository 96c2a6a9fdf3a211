"""params.yaml as a careless or hostile user writes it: every bad value ends in one
`error:` line naming the exact key and what is valid, before the stage does any work; and
every value the docs call valid gets through. Which values are which is written out by
hand in params_oracle.py, from params.yaml's comments and docs/params.md."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import PROJECT_ROOT, set_params
from hypothesis import given, settings
from hypothesis import strategies as st
from params_oracle import KINDS

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
from imdb_sentiment.text.tokenizing import TokenizeParams


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


# ------------------------------------------- valid values accepted, invalid ones refused
# What must be accepted and what refused is written out in params_oracle.py, from the docs.


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in leaf_keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


PARAM_KEYS = leaf_keys(load_params(PROJECT_ROOT / "params.yaml"))
# The stage whose main() reads a key. The folder holds no data and no model, so a stage
# that accepts its params stops at the first file it reads, in a line naming no param.
READER = {
    "seed": prepare.main,
    "data": prepare.main,
    "prepare": prepare.main,
    "model": train_distilbert.main,
    "tokenize": lambda: load_section(load_params(), "tokenize", TokenizeParams),
    "train_rf": train_rf.main,
    "train_linear": train_linear.main,
    "train_distilbert": train_distilbert.main,
    "export_onnx": export_onnx.main,
    "evaluate": evaluate.main,
    # The commands' sections, read as predict and score read them.
    "predict": lambda: load_section(load_params(), "predict", PredictParams),
    "score": lambda: load_section(load_params(), "score", ScoreParams),
}
ACCEPTED_KEYS = [key for key in PARAM_KEYS if KINDS[key].valid is not None]
PROPERTY = settings(max_examples=100, deadline=None, database=None)


def test_every_key_has_its_valid_and_invalid_values_written_down() -> None:
    assert sorted(KINDS) == sorted(PARAM_KEYS)


def flow_yaml(value: Any) -> str:
    """`value` as one line of flow-style YAML 1.2 (ruamel's emitter costs milliseconds a
    file, and this test writes a thousand): JSON, but for .nan and .inf, and strings in
    double quotes with everything outside YAML's printable range escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow_yaml(k)}: {flow_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow_yaml(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(_yaml_char(char) for char in value) + '"'
    return json.dumps(value)


def _yaml_char(char: str) -> str:
    code = ord(char)
    if char in '"\\':
        return "\\" + char
    printable = 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFFFD
    if printable and not 0xD800 <= code <= 0xDFFF and code != 0xFEFF:
        return char
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def outcome(folder: Path, key: str, value: Any, drawn: bool = True) -> tuple[int, list[str]]:
    """Run the stage that reads `key` in `folder`, whose params.yaml sets only `key` to
    `value` (every other key takes its default) and data.source to a folder that is not
    there: (exit status, the lines on stderr). A `drawn` value is first checked to read
    back as itself (the fixed edges do, once and for all)."""
    folder.mkdir(exist_ok=True)
    section, _, name = key.rpartition(".")
    params: dict[str, Any] = {"data": {"source": str(folder / "no-data")}}
    if section:
        params.setdefault(section, {})[name] = value
    else:
        params[name] = value
    (folder / "params.yaml").write_text(flow_yaml(params), encoding="utf-8")
    if drawn:
        written = load_params(folder / "params.yaml")
        read_back = written[section][name] if section else written[name]
        assert read_back == value or value != value, (key, value, read_back)  # NaN != NaN
    stderr = io.StringIO()
    previous = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(stderr):
            run_stage(READER[key.split(".")[0]])
        status = 0
    except SystemExit as exited:
        status = exited.code
    finally:
        os.chdir(previous)
    return status, stderr.getvalue().strip().splitlines()


def accepted(key: str, status: int, err: list[str]) -> bool:
    """The stage got past its params: it stopped, if it did, on the missing data or
    model, in one `error:` line that names no param."""
    return status == 0 or (
        status == 1
        and err[-1].startswith("error: ")
        and key not in err[-1]
        and "params.yaml" not in err[-1]
        and not any("Traceback" in line for line in err)
    )


def refused(key: str, status: int, err: list[str]) -> bool:
    """One line, the `error:` line that names the key."""
    return status == 1 and len(err) == 1 and err[0].startswith("error: ") and key in err[0]


def test_each_key_accepts_its_edges_and_refuses_just_past_them(tmp_path: Path) -> None:
    wrong = []
    for key in PARAM_KEYS:
        for value in KINDS[key].accept:
            status, err = outcome(tmp_path, key, value, drawn=False)
            if not accepted(key, status, err):
                wrong.append(f"{key} = {value!r} refused: {err}")
        for value in KINDS[key].refuse:
            status, err = outcome(tmp_path, key, value, drawn=False)
            if not refused(key, status, err):
                wrong.append(f"{key} = {value!r} not refused in one line naming it: {err}")
    assert not wrong, "\n".join(wrong)


@PROPERTY
@given(data=st.data(), key=st.sampled_from(ACCEPTED_KEYS))
def test_a_valid_value_is_accepted(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, key: str
) -> None:
    value = data.draw(KINDS[key].valid, label="value")
    status, err = outcome(tmp_path_factory.getbasetemp() / "valid", key, value)
    assert accepted(key, status, err), err


@PROPERTY
@given(data=st.data(), key=st.sampled_from(PARAM_KEYS))
def test_an_invalid_value_is_refused_in_one_line_naming_the_key(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, key: str
) -> None:
    value = data.draw(KINDS[key].invalid, label="value")
    status, err = outcome(tmp_path_factory.getbasetemp() / "invalid", key, value)
    assert refused(key, status, err), err


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
