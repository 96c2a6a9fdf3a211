#!/usr/bin/env bash
# `make offline-plots`: let `dvc plots show` / `dvc plots diff` render with no network.
# DVC's page loads vega, vega-lite and vega-embed from a CDN; this fetches local copies
# (npm, into the git-ignored .cache/vega), writes a page template that loads them and sets
# DVC's `plots.html_template` to it in .dvc/config.local (this machine only).
set -euo pipefail
cd "$(dirname "$0")/.."
vega_dir=.cache/vega
read -r -d "" -a packages <<<"${VEGA_PACKAGES:-vega@5.22.1 vega-lite@5.2.0 vega-embed@6.18.2}" || true
# Each an npm package and its version (name@version), never an option or a path.
for package in "${packages[@]}"; do
  if [[ ! $package =~ ^(@[a-z0-9._~-]+/)?[a-z0-9._~-]+@[A-Za-z0-9._^~-]+$ ]]; then
    printf 'error: VEGA_PACKAGES: %q is not an npm name@version\n' "$package" >&2
    exit 1
  fi
done
if [ ! -f "$vega_dir/node_modules/vega-embed/build/vega-embed.min.js" ]; then
  command -v npm >/dev/null || { echo "error: npm is needed to fetch vega (apt install npm)" >&2; exit 1; }
  npm install --prefix "$vega_dir" --no-audit --no-fund --no-save --silent "${packages[@]}"
fi
template="$PWD/.cache/plots-offline.html"
modules="$PWD/$vega_dir/node_modules"
cat >"$template" <<HTML
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC Plot</title>
<script src="file://$modules/vega/build/vega.min.js"></script>
<script src="file://$modules/vega-lite/build/vega-lite.min.js"></script>
<script src="file://$modules/vega-embed/build/vega-embed.min.js"></script>
</head>
<body>
{plot_divs}
</body>
</html>
HTML
dvc config --local plots.html_template "$template"
echo "dvc plots show now renders offline (template: $template)"
