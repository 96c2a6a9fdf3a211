#!/usr/bin/env bash
# Print a compact Markdown table of the runs: the workspace, the current commit, and the
# experiments of the current commit and of every commit experiments were run from, with
# the base model fine-tuned and each model's test accuracy from metrics/test/, and
# nothing else. Arguments go to `dvc exp show` in place of that choice of commits
# (e.g. `-A` for every commit, `-n 5` for the last five).
#   scripts/runs.sh [DVC EXP SHOW ARGS...]        (or: make runs)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
  # `dvc exp show` lists the experiments of HEAD alone: one run before the last commit, or
  # pulled from a teammate (`dvc exp pull`), has another baseline. Each experiment is the
  # ref refs/exps/<baseline, split after 2 characters>/<name>.
  head=$(git rev-parse HEAD)
  set -- --rev "${head}"
  baselines=$(git for-each-ref --format='%(refname)' refs/exps/ |
    sed -nE 's#^refs/exps/([0-9a-f]{2})/([0-9a-f]{38,62})/[^/]+$#\1\2#p' | sort -u)
  if [ -n "${baselines}" ]; then
    # shellcheck disable=SC2086  # one commit per word
    for rev in $(git log --no-walk=sorted --format=%H ${baselines}); do
      [ "${rev}" = "${head}" ] || set -- "$@" --rev "${rev}"
    done
  fi
fi
# `dvc exp show` names a metric column `FILE:KEY` (every metrics file has the same keys)
# and a param column by its key; --keep matches from the start of the name.
keep='Experiment$|Created$|model\.name$|metrics/test/[a-z0-9_]+\.json:accuracy$'
# The table again with each model's name as its column's, the base model by its own name
# (the hub id's last part or the folder's), its columns re-padded.
shorten='
import re, sys
rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in sys.stdin if line.strip()]
header = [re.sub(r"^metrics/test/(.+)\.json:accuracy$", r"\1", cell) for cell in rows[0]]
body = rows[2:]
if "model.name" in header:  # moved to the third column, before the models
    base = header.index("model.name")
    order = [0, 1, base, *(i for i in range(2, len(header)) if i != base)]
    header = ["base model" if i == base else header[i] for i in order]
    body = [[row[i].rstrip("/").rsplit("/", 1)[-1] if i == base else row[i] for i in order] for row in body]
widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
print("Test accuracy per model:\n")
print("\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)]))
'
dvc exp show --no-pager --md --drop '.*' --keep "${keep}" "$@" | python -c "${shorten}"
