#!/usr/bin/env bash
# Print a compact Markdown table of the runs: the experiments of the current commit (and
# the commit itself and the workspace) with each model's test accuracy from metrics/test/,
# and nothing else. Extra arguments go to `dvc exp show`
# (e.g. `-A` for every commit, `-n 5` for the last five).
#   scripts/runs.sh [DVC EXP SHOW ARGS...]        (or: make runs)
set -euo pipefail
cd "$(dirname "$0")/.."
# `dvc exp show` names a metric column `FILE:KEY` (every metrics file has the same keys);
# --keep matches from the start of the name.
keep='Experiment$|Created$|metrics/test/[a-z0-9_]+\.json:accuracy$'
# The table again with each model's name as its column's, its columns re-padded.
shorten='
import re, sys
rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in sys.stdin if line.strip()]
header = [re.sub(r"^metrics/test/(.+)\.json:accuracy$", r"\1", cell) for cell in rows[0]]
body = rows[2:]
widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
print("Test accuracy per model:\n")
print("\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)]))
'
dvc exp show --no-pager --md --drop '.*' --keep "${keep}" "$@" | python -c "${shorten}"
