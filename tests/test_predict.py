"""predict: the inputs it reads, the outputs it writes, how it cuts long reviews, and the
one-line errors for bad input. Runs predict's `main` in-process in a tiny workspace."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluate_workspace import build_workspace
from helpers import make_review, subprocess_env

from imdb_sentiment.cli import predict
from imdb_sentiment.evaluation.metrics import positive_proba
from imdb_sentiment.inference.scorer import load_scorer
from imdb_sentiment.inference.torch_backend import predict_logits
from imdb_sentiment.text.cleaning import clean_text
from imdb_sentiment.text.cutting import CutParams
from imdb_sentiment.text.tokenizing import tokenize_texts
from imdb_sentiment.transformer.loading import load_tokenizer

POSITIVE = "A superb, moving film with a brilliant cast. Loved it."
NEGATIVE = "Awful. A boring, dull waste of time; the worst script."


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return build_workspace(tmp_path_factory.mktemp("predict") / "project", tiny_model_dir)


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


def call(
    capsys: pytest.CaptureFixture[str], *argv: str, status: int = 0, stdin: str | None = None
) -> tuple[str, str]:
    """Run predict with `argv`; check its exit status; return (stdout, stderr)."""
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        if status:
            with pytest.raises(SystemExit) as exit_info:
                predict.main(list(argv))
            assert exit_info.value.code == status
        else:
            predict.main(list(argv))
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return out, err


def jsonl(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_reviews_from_arguments_as_a_table(in_workspace: Path, capsys) -> None:
    out, _ = call(capsys, POSITIVE, NEGATIVE)
    lines = out.splitlines()
    assert lines[0].split() == ["#", "label", "score", "review"]
    # The table shows what the model itself gives each review: its label and P(that label).
    proba = load_scorer("distilbert", "auto", Path("models/distilbert")).proba([POSITIVE, NEGATIVE])
    expected = [
        (str(number), "POSITIVE" if p >= 0.5 else "NEGATIVE", f"{max(p, 1 - p):.3f}")
        for number, p in enumerate(proba, 1)
    ]
    assert [tuple(line.split()[:3]) for line in lines[1:]] == expected


@pytest.mark.parametrize("model", ["distilbert", "rf", "linear"])
def test_every_model_gives_one_label_and_score_per_review(
    in_workspace: Path, capsys, model: str
) -> None:
    out, _ = call(capsys, "--model", model, "--format", "jsonl", POSITIVE, NEGATIVE, "Fine.")
    rows = jsonl(out)
    assert [row["index"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert row["label"] == ("POSITIVE" if row["p_positive"] >= 0.5 else "NEGATIVE")
        assert row["score"] == pytest.approx(max(row["p_positive"], 1 - row["p_positive"]))
    # The tiny models learned the synthetic sentiment words.
    assert rows[0]["p_positive"] > rows[1]["p_positive"]


def test_reviews_from_a_text_file_stdin_csv_and_parquet(
    in_workspace: Path, tmp_path: Path, capsys
) -> None:
    text_file = tmp_path / "reviews.txt"
    text_file.write_text(f"{POSITIVE}\n{NEGATIVE}\n", encoding="utf-8")
    from_file = jsonl(call(capsys, "--file", str(text_file), "--format", "jsonl")[0])
    from_stdin = jsonl(call(capsys, "--format", "jsonl", stdin=f"{POSITIVE}\n{NEGATIVE}\n")[0])
    assert len(from_file) == 2 and from_file == from_stdin

    frame = pd.DataFrame({"id": [7, 8], "review": [POSITIVE, NEGATIVE]})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    frame.to_parquet(tmp_path / "reviews.parquet", index=False)
    for name in ("reviews.csv", "reviews.parquet"):
        out, _ = call(
            capsys, "--file", str(tmp_path / name), "--column", "review", "--format", "csv"
        )
        rows = pd.read_csv(io.StringIO(out))
        assert list(rows.columns) == ["index", "id", "label", "score", "p_positive", "review"]
        assert rows["p_positive"].round(6).tolist() == [r["p_positive"] for r in from_file]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_the_inputs_other_columns_are_carried_to_every_file_format(
    in_workspace: Path, tmp_path: Path, capsys, suffix: str
) -> None:
    # An id to join on, the gold label (named like an output column), a review that is not
    # scored (left out, as in every format), and a review given as an argument before them.
    frame = pd.DataFrame(
        {
            "id": ["r-1", "r-2", "r-3"],
            "text": [POSITIVE, " ", NEGATIVE],
            "label": ["1", "0", "0"],
        }
    )
    source = tmp_path / f"reviews.{suffix}"
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source)
    outputs = {}
    for fmt in ("csv", "jsonl", "parquet"):
        output = tmp_path / f"scores.{fmt}"
        call(
            capsys,
            "--file",
            str(source),
            "--format",
            fmt,
            "--output",
            str(output),
            "Fine.",
            status=1,
        )
        outputs[fmt] = (
            pd.read_parquet(output)
            if fmt == "parquet"
            else pd.DataFrame(jsonl(output.read_text(encoding="utf-8")))
            if fmt == "jsonl"
            else pd.read_csv(output, dtype=str, keep_default_na=False)
        )
    for fmt, rows in outputs.items():
        assert list(rows.columns) == [
            *("index", "id", "input_label", "label", "score", "p_positive", "review")
        ], fmt
        assert [int(i) for i in rows["index"]] == [1, 2, 4], fmt
        # The argument has no carried cells; each file row keeps its own.
        # (CSV writes a missing cell empty, JSON null, Parquet null.)
        cells = {name: [None if pd.isna(v) or v == "" else v for v in rows[name]] for name in rows}
        assert cells["id"] == [None, "r-1", "r-3"], fmt
        assert cells["input_label"] == [None, "1", "0"], fmt
        assert rows["review"].tolist() == ["Fine.", POSITIVE, NEGATIVE], fmt
    assert outputs["parquet"]["p_positive"].tolist() == outputs["jsonl"]["p_positive"].tolist()


def test_parquet_output_needs_a_file(in_workspace: Path, capsys) -> None:
    out, err = call(capsys, "--format", "parquet", POSITIVE, status=1)
    assert out == ""
    assert err.strip() == "error: --format parquet writes a file: pass --output FILE"


def test_html_in_a_review_is_cleaned_as_prepare_did(in_workspace: Path, capsys) -> None:
    plain = jsonl(call(capsys, "--format", "jsonl", "A superb film. Loved it.")[0])
    marked = jsonl(call(capsys, "--format", "jsonl", "A superb film.<br /><br />Loved   it.")[0])
    assert marked[0]["review"] == plain[0]["review"] == "A superb film. Loved it."
    assert marked[0]["p_positive"] == plain[0]["p_positive"]


def test_long_reviews_are_cut_as_in_training(in_workspace: Path, capsys, tiny_tokenizer) -> None:
    """predict scores the ids that `tokenize` would cut for the model (head_tail at 64
    tokens, from tokenize_config.json), and that cut differs from a head-only cut."""
    import datasets
    from transformers import AutoModelForSequenceClassification

    config = json.loads(Path("models/distilbert/tokenize_config.json").read_text())
    assert config["truncation"] == "head_tail" and config["max_length"] == 64
    cut = CutParams(max_length=64, truncation="head_tail", head_tokens=config["head_tokens"])
    rng = random.Random(5)
    # Cleaned as prepare (and predict) clean them: some carry <br /> tags.
    long_reviews = [
        clean_text(make_review(i % 2, rng, n_words=90), clean_html=True, normalize_whitespace=True)
        for i in range(6)
    ]
    test = datasets.load_from_disk("data/tokenized/hf")["test"]
    test_texts = pd.read_parquet("data/tokenized/frame/test.parquet")["text"].tolist()[:10]
    texts = test_texts + long_reviews

    tokenizer = load_tokenizer("models/distilbert")
    ids = tokenize_texts(texts, tokenizer, cut)["input_ids"]
    assert ids[:10] == test["input_ids"][:10]  # the same cut tokenize made for evaluate
    model = AutoModelForSequenceClassification.from_pretrained("models/distilbert")
    expected = positive_proba(predict_logits(model, ids, tokenizer=tiny_tokenizer))
    out, _ = call(capsys, "--format", "jsonl", "--backend", "torch", *texts)
    got = np.array([row["p_positive"] for row in jsonl(out)])
    np.testing.assert_allclose(got, expected, atol=2e-6)

    head = CutParams(max_length=64, truncation="head", head_tokens=0)
    head_ids = tokenize_texts(long_reviews, tokenizer, head)["input_ids"]
    head_proba = positive_proba(predict_logits(model, head_ids, tokenizer=tiny_tokenizer))
    assert not np.allclose(head_proba, expected[10:], atol=1e-4)


def test_an_empty_review_is_reported_and_the_others_scored(in_workspace: Path, capsys) -> None:
    out, err = call(capsys, "--format", "jsonl", POSITIVE, "  ", "<br />", NEGATIVE, status=1)
    assert [row["index"] for row in jsonl(out)] == [1, 4]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: review 2 is empty; not scored",
        "error: review 3 is empty; not scored",
        "error: 2 of 4 review(s) empty and not scored",
    ]


def test_a_missing_model_folder_is_one_line(in_workspace: Path, tmp_path: Path, capsys) -> None:
    out, err = call(capsys, "--model-dir", str(tmp_path / "nowhere"), POSITIVE, status=1)
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere'}: no such model folder (train it with `dvc repro`, "
        "fetch it with `dvc pull` or `dvc artifacts get`)"
    )


def test_an_unreadable_file_is_one_line(in_workspace: Path, tmp_path: Path, capsys) -> None:
    _, err = call(capsys, "--file", str(tmp_path / "missing.txt"), status=1)
    assert (
        err.strip()
        == f"error: {tmp_path / 'missing.txt'}: cannot read reviews (No such file or directory)"
    )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    _, err = call(capsys, "--file", str(broken), status=1)
    assert err.strip().startswith(f"error: {broken}: cannot read reviews (")
    assert len(err.strip().splitlines()) == 1


def test_a_missing_column_is_one_line(in_workspace: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": [POSITIVE]}).to_csv(path, index=False)
    out, err = call(capsys, "--file", str(path), status=1)
    assert out == ""
    assert err.strip() == f"error: {path}: no column 'text'; it has ['review']"


@pytest.mark.e2e
def test_the_module_runs_as_a_command(workspace: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "imdb_sentiment.cli.predict",
        "--format",
        "csv",
        "--model",
        "linear",
    ]
    env = subprocess_env()
    scored = subprocess.run(
        command, cwd=workspace, env=env, input=f"{POSITIVE}\n", capture_output=True, text=True
    )
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.splitlines()[0] == "index,label,score,p_positive,review"
    assert len(scored.stdout.splitlines()) == 2
    # Nothing on stdin: one line, status 1.
    empty = subprocess.run(
        command, cwd=workspace, env=env, input="", capture_output=True, text=True
    )
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines()[-1] == (
        "error: no reviews given: pass them as arguments, with --file, or on stdin"
    )
