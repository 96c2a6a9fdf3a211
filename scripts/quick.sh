#!/usr/bin/env bash
# `make quick`: every stage, as the DVC experiment `quick`, on a capped slice of the data
# with settings chosen for a short CPU run; prints each model's test accuracy at the end.
#   DATA=folder   local data (Parquet folder or aclImdb/) instead of the Hub dataset
#   MODEL=folder  local pretrained model (save_pretrained folder) instead of the Hub model
# Both are copied under data/raw/ and models/pretrained/ and tracked with `dvc add`, so the
# experiment's params name relative paths. QUICK_SETTINGS (from the Makefile) holds the
# caps and training settings; QUICK_EXTRA adds or overrides `-S key=value` settings.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() {
  echo "error: $*" >&2
  exit 1
}

# QUICK_SETTINGS and QUICK_EXTRA: `-S key=value` pairs and nothing else (no other option of
# `dvc exp run`, no quote, `$` or white space inside a value).
settings_of() {
  local variable=$1 words
  read -r -d '' -a words <<<"${!variable:-}" || true
  local i
  for ((i = 0; i < ${#words[@]}; i += 2)); do
    [ "${words[i]}" = -S ] && [[ ${words[i + 1]:-} =~ ^[A-Za-z_][A-Za-z0-9_.]*=[][A-Za-z0-9._/:+,-]*$ ]] ||
      fail "$variable: $(printf '%q' "${words[*]:i:2}") is not -S key=value"
  done
  settings+=("${words[@]}")
}

# DATA and MODEL: local folders, copied under data/raw/ and models/pretrained/ under their
# own name, which a setting then names: a plain name (letters, digits, . _ -).
local_folder() {
  local variable=$1 folder=$2
  [ -d "$folder" ] || fail "$variable=$(printf '%q' "$folder"): no such folder"
  local name
  name=$(basename "$(cd "$folder" && pwd)")
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    fail "$variable=$(printf '%q' "$folder"): rename the folder to letters, digits, . _ and - only"
}

missing=()
[ -n "${DATA:-}" ] || missing+=("DATA=")
[ -n "${MODEL:-}" ] || missing+=("MODEL=")
if [ "${#missing[@]}" -gt 0 ]; then
  # What is not given comes from the Hugging Face Hub: stop at once, in one line, when it
  # cannot be reached (the libraries would retry for about a minute before they fail).
  python - "${missing[*]}" <<'PY'
import sys

from imdb_sentiment.core.hub import QUICK_HINT, hub_unreachable

reason = hub_unreachable()
if reason is not None:
    without = " and ".join(sys.argv[1].split())
    sys.exit(
        f"error: without {without}, make quick reads from the Hugging Face Hub, which cannot "
        f"be reached ({reason}): give local copies, `{QUICK_HINT}`"
    )
PY
fi
settings=()
settings_of QUICK_SETTINGS
if [ -n "${DATA:-}" ]; then
  local_folder DATA "$DATA"
  settings+=(-S "data.source=$(scripts/bring_local.sh "$DATA" data/raw)")
fi
if [ -n "${MODEL:-}" ]; then
  local_folder MODEL "$MODEL"
  settings+=(-S "model.name=$(scripts/bring_local.sh "$MODEL" models/pretrained)")
fi
settings_of QUICK_EXTRA
start=$(date +%s)
if [ -f dvc.lock ]; then
  dvc exp run --force --name quick "${settings[@]}"
else
  # A first run has no dvc.lock, so DVC has nothing to check out and says so once per
  # out ("No file hash info found"): expected here, and only noise.
  dvc exp run --force --name quick "${settings[@]}" \
    2> >(grep -v "No file hash info found" >&2)
fi
echo
echo "quick: finished in $(($(date +%s) - start)) s"
python scripts/results.py
