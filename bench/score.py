"""Scoring a corpus: one plain process against `score` on Ray, the same linear model.

    python -m bench.score [--data DIR] [--model-dir DIR] [--workers 2]

Scores every review of the data folder (`--data`, else env IMDB_DATA, else
../shared/data/imdb: train, test and unsup, 99,999 reviews) with NB-LR twice:
- plain: one process, no Ray: reads every file with pandas, cleans the reviews as
  `prepare` does and calls `inference.scorer`'s scorer on all of them at once;
- ray: `imdb-score DATA --model linear` on a Ray instance it starts on this
  machine, with `--workers` scoring actors (default 2).
Both are timed from process start to exit (imports, model loading and, for Ray, starting
Ray included); the peak resident memory is each process's own (for Ray: the driver's).
Without `--model-dir` it first trains NB-LR (the train_linear stage's `build_pipeline`
with its defaults, on the 25,000 cleaned train reviews), timed apart and left out.
The tokens column comes from the tokenizer of ../shared/models/all-MiniLM-L6-v2
(DistilBERT's vocabulary; `--tokenizer`). The last line is one JSON object: both
throughputs, their ratio, whether the predictions are identical and the peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.project import IMDB_DIR, OFFLINE_ENV, STAND_IN_MODEL, require

REPO = Path(__file__).resolve().parents[1]

ENV = {**OFFLINE_ENV, "TOKENIZERS_PARALLELISM": "true", "PYTHONPATH": str(REPO)}


def input_files(data: Path) -> list[Path]:
    return sorted(data.glob("*.parquet"))


def clean(texts: list[str]) -> list[str]:
    from imdb_sentiment.text.cleaning import CleaningParams, clean_text

    settings = CleaningParams()
    html, whitespace = settings.clean_html, settings.normalize_whitespace
    return [clean_text(t, clean_html=html, normalize_whitespace=whitespace) for t in texts]


def train_linear(data: Path, tokenizer_name: str, models_dir: Path) -> float:
    """Fit NB-LR with the stage's defaults on the train split; save it; return seconds."""
    import pandas as pd

    from imdb_sentiment.classical.linear import LinearParams, build_pipeline
    from imdb_sentiment.classical.store import save_classical_model
    from imdb_sentiment.classical.training import fit_pipeline
    from imdb_sentiment.text.cutting import CutParams
    from imdb_sentiment.text.tokenizing import tokenize_texts
    from imdb_sentiment.transformer.loading import load_tokenizer

    started = time.perf_counter()
    train = pd.read_parquet(data / "train.parquet", columns=["text", "label"])
    texts = clean(train["text"].tolist())
    tokens = tokenize_texts(texts, load_tokenizer(tokenizer_name), CutParams())["tokens"]
    frame = pd.DataFrame({"text": texts, "tokens": tokens, "label": train["label"].to_numpy()})
    pipeline = build_pipeline(LinearParams(), seed=42)
    fit_pipeline(pipeline, frame)
    save_classical_model(pipeline, models_dir / "linear")
    return time.perf_counter() - started


def plain(data: Path, model_dir: Path, tokenizer_name: str, out: Path) -> None:
    """The baseline, in its own process: every review at once, no Ray."""
    import pandas as pd

    from imdb_sentiment.inference.scorer import load_scorer

    frames = [pd.read_parquet(path) for path in input_files(data)]
    reviews = pd.concat(frames, ignore_index=True)
    scorer = load_scorer("linear", model_dir=model_dir, tokenizer=tokenizer_name)
    proba = scorer.proba(clean(reviews["text"].tolist()))
    pd.DataFrame({"label": (proba >= 0.5).astype("int64"), "score": proba}).to_parquet(out)


def peak_rss_gb(pid: int, peak: list[float], done: threading.Event) -> None:
    """Follow the process's own peak resident memory (VmHWM) until `done`. Not wait4's
    ru_maxrss: that also covers the children it waited for, and a Ray driver waits for the
    Ray processes it started, whose workers hold the model."""
    while not done.is_set():
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024 / 1e9)
        done.wait(0.05)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `command`; return its wall seconds, its own peak RSS (GB) and its stdout."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    peak, done = [0.0], threading.Event()
    follower = threading.Thread(target=peak_rss_gb, args=(child.pid, peak, done))
    follower.start()
    stdout = child.stdout.read()  # until it exits (polled every 50 ms while it runs)
    done.set()
    follower.join()
    status = child.wait()
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"error: {' '.join(command[:4])} ... exited {status}")
    return seconds, peak[0], stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("IMDB_DATA", IMDB_DIR)))
    parser.add_argument("--model-dir", type=Path, help="a trained linear model folder")
    parser.add_argument("--tokenizer", default=str(STAND_IN_MODEL))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows-per-file", type=int, default=10_000)
    parser.add_argument("--plain", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain(args.data, args.plain[0], args.tokenizer, args.plain[1])
        return
    require(args.data, Path(args.tokenizer))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | ENV
    import pandas as pd
    import pyarrow.dataset as pads

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        models_dir = work / "models"
        train_s = None
        if args.model_dir is None:
            train_s = train_linear(args.data, args.tokenizer, models_dir)
            print(f"trained NB-LR in {train_s:.1f} s (not counted)", flush=True)
        else:
            models_dir = args.model_dir.resolve().parent
            if args.model_dir.name != "linear":
                (work / "models").mkdir()
                os.symlink(args.model_dir.resolve(), work / "models" / "linear")
                models_dir = work / "models"
        rows = sum(pads.dataset(p).count_rows() for p in input_files(args.data))
        print(f"{rows} reviews; cores: {os.cpu_count()}, load {os.getloadavg()}", flush=True)

        plain_s, plain_mem, _ = timed(
            [sys.executable, "-m", "bench.score", "--data", str(args.data),
             "--tokenizer", args.tokenizer,
             "--plain", str(models_dir / "linear"), str(work / "plain.parquet")],
            env,
        )  # fmt: skip
        print(f"plain: {plain_s:.1f} s, {rows / plain_s:.0f} reviews/s", flush=True)
        ray_s, ray_mem, stdout = timed(
            [sys.executable, "-m", "imdb_sentiment.cli.score", str(args.data), "--model", "linear",
             "--models-dir", str(models_dir), "--tokenizer", args.tokenizer,
             "--output", str(work / "scores"), "--workers", str(args.workers),
             "--rows-per-file", str(args.rows_per_file)],
            env,
        )  # fmt: skip
        summary = json.loads(stdout.strip().splitlines()[-1])
        print(f"ray: {ray_s:.1f} s, {rows / ray_s:.0f} reviews/s; {summary}", flush=True)

        expected = pd.read_parquet(work / "plain.parquet")
        parts = sorted((work / "scores").glob("part-*.parquet"))
        got = pd.concat([pd.read_parquet(p, columns=["label", "score"]) for p in parts])
        identical = bool(
            len(got) == len(expected)
            and (got["label"].to_numpy() == expected["label"].to_numpy()).all()
            and (got["score"].to_numpy() == expected["score"].to_numpy()).all()
        )
    figures = {
        "reviews": rows,
        "plain_reviews_per_s": round(rows / plain_s, 1),
        "ray_reviews_per_s": round(rows / ray_s, 1),
        "ratio": round(plain_s / ray_s, 3),
        "identical_predictions": identical,
        "driver_peak_mem_gb": round(ray_mem, 3),
        "plain_peak_mem_gb": round(plain_mem, 3),
        "plain_s": round(plain_s, 1),
        "ray_s": round(ray_s, 1),
        "ray_workers": args.workers,
        "train_s": None if train_s is None else round(train_s, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
