#!/usr/bin/env bash
# Print the tables a reviewer pastes into a pull request: `dvc metrics diff --md` and
# `dvc params diff --md` of the workspace against a revision (default: main).
#   scripts/report.sh [REV]        (or: make report REV=...)
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-main}"
if ! git rev-parse --verify --quiet "${rev}^{commit}" >/dev/null; then
  echo "error: ${rev}: no such Git revision" >&2
  exit 1
fi
echo "## Metrics: workspace against ${rev}"
echo
dvc metrics diff "${rev}" --md
echo
echo "## Params: workspace against ${rev}"
echo
dvc params diff "${rev}" --md
