#!/usr/bin/env bash
# Print the tables a reviewer pastes into a pull request: `dvc metrics diff --md` and
# `dvc params diff --md` of the workspace against a revision (default: main): a Git
# commit, branch or tag, or the name of a DVC experiment (`dvc exp run -n NAME`).
#   scripts/report.sh [REV]        (or: make report REV=...)
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:-main}"
# A revision or experiment name is one word of the characters Git allows in one, and not
# an option: anything else stops here, before it reaches git or dvc.
if [[ ! ${rev} =~ ^[A-Za-z0-9._/@^~{}:+-]+$ || ${rev} == -* ]]; then
  printf 'error: REV=%q: not a Git revision or DVC experiment name\n' "${rev}" >&2
  exit 1
fi
against="${rev}"
if ! git rev-parse --verify --quiet "${rev}^{commit}" >/dev/null; then
  # Not a Git revision: resolve it as a DVC experiment name (refs/exps/...) the way
  # `dvc metrics diff` will, so that an unknown or ambiguous name stops here with one line.
  python - "${rev}" <<'EOF'
import sys

from dvc.scm import SCM, RevError, resolve_rev

rev = sys.argv[1]
try:
    resolve_rev(SCM("."), rev)
except RevError as exc:
    reason = str(exc) if "ambiguous" in str(exc) else "no such Git revision or DVC experiment"
    sys.exit(f"error: {rev}: {reason}")
EOF
  against="experiment ${rev}"
fi
# DVC lists the metrics files in no fixed order: sort the rows by file (keeping each file's
# keys in their order) so that two reports of the same runs are the same text.
sorted_table() {
  local table
  table=$("$@")
  head -n 2 <<<"${table}"
  tail -n +3 <<<"${table}" | LC_ALL=C sort --stable --field-separator='|' --key=2,2
  echo
}
echo "## Metrics: workspace against ${against}"
echo
sorted_table dvc metrics diff "${rev}" --md
echo
echo "## Params: workspace against ${against}"
echo
sorted_table dvc params diff "${rev}" --md
