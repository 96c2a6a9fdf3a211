#!/usr/bin/env bash
# Bring a local folder into the project the DVC way: copy it under DEST_DIR (once) and
# track the copy with `dvc add`, so that params.yaml names a relative path, the content is
# versioned by its hash and a teammate gets it with `dvc pull`. Prints the relative path.
#   scripts/bring_local.sh SOURCE_FOLDER DEST_DIR
set -euo pipefail
source_dir=${1:?usage: bring_local.sh SOURCE_FOLDER DEST_DIR}
dest_dir=${2:?usage: bring_local.sh SOURCE_FOLDER DEST_DIR}
if [ ! -d "$source_dir" ]; then
  echo "error: $source_dir: no such folder" >&2
  exit 1
fi
name=$(basename "$(cd "$source_dir" && pwd)")
target="$dest_dir/$name"
if [ ! -e "$target" ]; then
  mkdir -p "$dest_dir"
  echo "copying $source_dir to $target" >&2
  # Copied inside a private folder made for this run alone, then moved into place.
  tmp=$(mktemp -d "$dest_dir/.$name.tmp-XXXXXXXX")
  trap 'rm -rf -- "$tmp"' EXIT
  cp -R -- "$source_dir" "$tmp/$name"
  mv -- "$tmp/$name" "$target"
fi
dvc add --quiet "$target" >&2
echo "./$target"
