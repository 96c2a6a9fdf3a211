"""Benchmark the classical models on the full IMDb data: test accuracy, fit time, peak memory.

    .venv/bin/python bench/classical.py [--frame-dir DIR] [-S train_rf.n_estimators=500]

Builds the tokenized frame from `../shared/data/imdb` with the project's own `prepare` and
`tokenize` stages (in a temporary folder, tokenizer from `../shared/models/all-MiniLM-L6-v2`,
which has DistilBERT's uncased vocabulary), unless `--frame-dir` points at an existing
`data/tokenized/frame`. Then, for each model, a fresh subprocess builds the pipeline from the
stage's own `build_pipeline` and the repo's `params.yaml` (plus any `-S` overrides), fits it
on the prepared train split (22,500 reviews) and scores it once on the 24,999 test reviews.
Peak memory is that subprocess's maximum resident set size. The last line is one JSON object:
{"rf": {"accuracy", "fit_s", "peak_mem_gb"}, "linear": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.project import (
    IMDB_DIR,
    NO_CAPS,
    OFFLINE_ENV,
    STAND_IN_MODEL,
    require,
    temp_project,
)

REPO = Path(__file__).resolve().parents[1]

MODELS = {
    "rf": ("imdb_sentiment.classical.forest", "train_rf", "RFParams"),
    "linear": ("imdb_sentiment.classical.linear", "train_linear", "LinearParams"),
}
OFFLINE = {**OFFLINE_ENV, "TOKENIZERS_PARALLELISM": "true"}


@contextmanager
def built_frame() -> Iterator[Path]:
    """Run prepare + tokenize on the real data in a temporary project; yield its tokenized
    frame dir (removed after)."""
    settings = {
        "data.source": str(IMDB_DIR),
        "model.name": str(STAND_IN_MODEL),
        **NO_CAPS,
    }
    env = dict(os.environ, **OFFLINE, PYTHONPATH=str(REPO))
    with temp_project("bench-classical-", settings, chdir=False) as work:
        for stage in ("prepare", "tokenize"):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", f"imdb_sentiment.stages.{stage}"],
                cwd=work,
                env=env,
                check=True,
            )
            print(f"{stage}: {time.perf_counter() - start:.1f} s", flush=True)
        yield work / "data" / "tokenized" / "frame"


def parse_overrides(items: list[str]) -> dict[str, dict[str, object]]:
    """`-S section.key=value` (value read as YAML) -> {section: {key: value}}."""
    from ruamel.yaml import YAML

    overrides: dict[str, dict[str, object]] = {}
    for item in items:
        dotted, _, raw = item.partition("=")
        section, _, key = dotted.partition(".")
        if not key or not _:
            raise SystemExit(f"error: -S {item!r}: expected section.key=value")
        overrides.setdefault(section, {})[key] = YAML(typ="safe").load(raw)
    return overrides


def worker(name: str, frame_dir: Path, overrides: dict[str, dict[str, object]]) -> None:
    """Fit one model and print its figures as JSON (run in its own process)."""
    import importlib

    import numpy as np

    from imdb_sentiment.classical.features import pipeline_positive_proba
    from imdb_sentiment.classical.training import fit_pipeline, read_frame
    from imdb_sentiment.core.logs import setup_logging
    from imdb_sentiment.core.params import load_params, load_section, load_shared

    setup_logging()
    module_name, section, schema_name = MODELS[name]
    module = importlib.import_module(module_name)
    params = load_params(REPO / "params.yaml")
    params[section] = {**(params.get(section) or {}), **overrides.get(section, {})}
    config = load_section(params, section, getattr(module, schema_name))
    seed = load_shared(params).seed
    train = read_frame("train", frame_dir)
    test = read_frame("test", frame_dir)
    pipeline = module.build_pipeline(config, seed)
    cpu_start = time.process_time()
    fit_s = fit_pipeline(pipeline, train)
    fit_cpu_s = time.process_time() - cpu_start
    proba = pipeline_positive_proba(pipeline, test)
    accuracy = float(np.mean((proba >= 0.5) == test["label"].to_numpy()))
    print(
        json.dumps(
            {
                "accuracy": accuracy,
                "fit_s": round(fit_s, 2),
                "fit_cpu_s": round(fit_cpu_s, 2),
                "train_rows": len(train),
                "test_rows": len(test),
                "config": config.model_dump(),
            }
        ),
        flush=True,
    )


def run_worker(name: str, frame_dir: Path, overrides: list[str]) -> dict[str, object]:
    """Run `worker` in a subprocess; add its peak resident memory from wait4's rusage."""
    args = [sys.executable, "-m", "bench.classical", "--worker", name]
    args += ["--frame-dir", str(frame_dir)]
    for item in overrides:
        args += ["-S", item]
    env = dict(os.environ, **OFFLINE, PYTHONPATH=str(REPO))
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"error: the {name} worker exited {child.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux.
    result["peak_mem_gb"] = round(usage.ru_maxrss * 1024 / 1e9, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame-dir", type=Path, help="an existing data/tokenized/frame")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("-S", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--worker", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.frame_dir, parse_overrides(args.overrides))
        return
    parse_overrides(args.overrides)  # fail on a malformed -S before any work

    with ExitStack() as stack:
        frame_dir = args.frame_dir
        if frame_dir is None:
            require(IMDB_DIR, STAND_IN_MODEL)
            frame_dir = stack.enter_context(built_frame())
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}", flush=True)
        figures = {}
        for name in args.models:
            result = run_worker(name, frame_dir, args.overrides)
            print(
                f"{name}: test accuracy {result['accuracy']:.4f} on {result['test_rows']} "
                f"reviews, fit {result['fit_s']:.1f} s (CPU {result['fit_cpu_s']:.1f} s) on "
                f"{result['train_rows']}, peak memory {result['peak_mem_gb']:.2f} GB; "
                f"load average now {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            figures[name] = {key: result[key] for key in ("accuracy", "fit_s", "peak_mem_gb")}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
