#!/usr/bin/env bash
# Print a compact Markdown table of the runs: the experiments of the current commit (and
# the commit itself and the workspace) with each model's test accuracy and F1 from
# metrics/evaluate.json, and nothing else. Extra arguments go to `dvc exp show`
# (e.g. `-A` for every commit, `-n 5` for the last five).
#   scripts/runs.sh [DVC EXP SHOW ARGS...]        (or: make runs)
set -euo pipefail
cd "$(dirname "$0")/.."
# `dvc exp show` names a metric column `MODEL.KEY`, or `FILE:MODEL.KEY` when another
# metrics file has the same key; --keep matches from the start of the name.
keep='Experiment$|Created$|(metrics/evaluate\.json:)?(rf|linear|distilbert)\.(accuracy|f1)$'
dvc exp show --no-pager --md --drop '.*' --keep "${keep}" "$@"
