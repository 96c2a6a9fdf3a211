#!/usr/bin/env bash
# `make release NAME=distilbert VERSION=1.0.0`: publish a version of a model that dvc.yaml
# declares under `artifacts:`, as the annotated Git tag NAME@vVERSION (the GTO convention
# by which `dvc artifacts get URL NAME --rev vVERSION` finds it). Refuses unless the
# workspace is committed and the pipeline up to date (the model and its metrics are those
# of the tagged commit), pushes the DVC data, checks the commit is on the upstream
# branch, then creates the tag and pushes it there.
set -euo pipefail
fail() {
  echo "error: $*" >&2
  exit 1
}

name=${1:-}
version=${2:-}
[ -n "$name" ] && [ -n "$version" ] ||
  fail "usage: make release NAME=<artifact in dvc.yaml> VERSION=<major.minor.patch>"
# An artifact name as DVC allows it (letters, digits, -, _ and /), and a version: anything
# else stops here, shown escaped on one line, before it reaches git, dvc or a tag name.
artifact='^[a-zA-Z0-9]([a-zA-Z0-9/_-]*[a-zA-Z0-9])?$'
[[ $name =~ $artifact ]] || fail "NAME=$(printf '%q' "$name"): not an artifact name"
version=${version#v}
semver='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'
[[ $version =~ $semver ]] || fail "VERSION=$(printf '%q' "$2"): not a version such as 1.0.0"

# The artifact's path, or one line naming the declared artifacts.
path=$(python - "$name" <<'PY'
import sys

import yaml

with open("dvc.yaml", encoding="utf-8") as handle:
    artifacts = (yaml.safe_load(handle) or {}).get("artifacts") or {}
name = sys.argv[1]
if name not in artifacts:
    declared = ", ".join(artifacts) or "none"
    sys.exit(f"error: NAME={name}: not an artifact of dvc.yaml (declared: {declared})")
print(artifacts[name]["path"])
PY
)
tag="$name@v$version"

if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
  fail "tag $tag already exists: release a higher VERSION"
fi
[ -z "$(git status --porcelain)" ] ||
  fail "the workspace has uncommitted changes (git status): commit them first"
status=$(dvc status --json)
[ "$status" = "{}" ] ||
  fail "the pipeline is not up to date (dvc status): run dvc repro and commit first"
[ -e "$path" ] || fail "$path is missing: dvc pull or dvc repro first"

dvc push
upstream=$(git rev-parse --abbrev-ref --symbolic-full-name '@{u}' 2>/dev/null) ||
  fail "branch $(git branch --show-current) has no upstream: git push -u <remote> <branch> first"
remote=${upstream%%/*}
git fetch -q "$remote"
git merge-base --is-ancestor HEAD '@{u}' ||
  fail "commit $(git rev-parse --short HEAD) is not on $upstream: git push first"

git tag -a "$tag" -m "Registering artifact $name version v$version"
git push -q "$remote" "refs/tags/$tag"
echo "released $tag ($path at $(git rev-parse --short HEAD)); fetch it with:"
echo "  dvc artifacts get $(git remote get-url "$remote") $name --rev v$version"
