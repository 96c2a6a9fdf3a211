#!/usr/bin/env bash
# The pull-request workflow's base run: `make quick` on the base commit, kept in a folder that
# the workflow caches by the base commit's hash, so that every pull request against the same
# base reuses it and the report compares a quick run with a quick run.
#   scripts/base_quick.sh run BASE_COMMIT DIR   `make quick` in a clone at BASE_COMMIT; DIR
#                                               gets the experiment's commit (a Git bundle),
#                                               its DVC cache, and its hash in DIR/rev
#   scripts/base_quick.sh load DIR              bring DIR's experiment into this repository
#                                               (Git objects, DVC cache); print its commit
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/base_quick.sh run BASE_COMMIT DIR | load DIR" >&2
  exit 2
}

run() {
  local base dir commit ref
  base=$(git rev-parse --verify --quiet "$1^{commit}") || {
    echo "error: $1: no such commit" >&2
    exit 1
  }
  dir=$2
  if [ -e "$dir" ]; then
    echo "error: $dir exists: give a new folder" >&2
    exit 1
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  git clone -q "$PWD" "$work/repo"
  git -C "$work/repo" checkout -q --detach "$base"
  make -C "$work/repo" quick
  # `dvc exp run` keeps an experiment as a commit under refs/exps/<baseline>/<name>.
  ref="refs/exps/${base:0:2}/${base:2}/quick"
  commit=$(git -C "$work/repo" rev-parse --verify "$ref")
  # DIR appears whole or not at all, so that a failed run is never cached.
  mkdir -p "$work/out"
  git -C "$work/repo" bundle create -q "$work/out/quick.bundle" "$ref" "^$base"
  cp -R "$work/repo/.dvc/cache" "$work/out/cache"
  echo "$commit" >"$work/out/rev"
  mkdir -p "$(dirname "$dir")"
  mv "$work/out" "$dir"
  echo "$commit"
}

load() {
  local dir=$1 commit cache
  if [ ! -f "$dir/rev" ]; then
    echo "error: $dir holds no base quick run (scripts/base_quick.sh run makes one)" >&2
    exit 1
  fi
  commit=$(cat "$dir/rev")
  git fetch -q "$dir/quick.bundle" "+refs/exps/*:refs/exps/*"
  # The cache is addressed by content: adding another run's files changes none of ours.
  cache=$(dvc cache dir)
  mkdir -p "$cache"
  cp -R "$dir/cache/." "$cache/"
  git rev-parse --verify --quiet "$commit^{commit}"
}

case "${1:-}" in
  run) [ $# -eq 3 ] || usage; run "$2" "$3" ;;
  load) [ $# -eq 2 ] || usage; load "$2" ;;
  *) usage ;;
esac
