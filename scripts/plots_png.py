"""Render `dvc plots diff` as PNG images without a browser, for a pull request's reviewer.

    python scripts/plots_png.py OUT_DIR [REV ...]

Writes one `<plot id>.png` per plot of `dvc plots diff REV ...` into OUT_DIR: one REV draws
the workspace against it, several draw those revisions, none the workspace against HEAD.
DVC gives each plot as a Vega-Lite spec with its data inline; vl-convert-python (the `ci`
extra) renders it to PNG, no browser needed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


class PlotsError(Exception):
    """A failure worth one `error:` line."""


def plot_specs(revisions: list[str]) -> dict[str, dict[str, Any]]:
    """{file name stem: Vega-Lite spec} of every plot `dvc plots diff` draws."""
    result = subprocess.run(
        ["dvc", "plots", "diff", "--json", *revisions], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise PlotsError(f"dvc plots diff {' '.join(revisions)}: {result.stderr.strip()}")
    specs: dict[str, dict[str, Any]] = {}
    for plot_id, renders in json.loads(result.stdout).get("data", {}).items():
        vega = [render["content"] for render in renders if render.get("type") == "vega"]
        for index, spec in enumerate(vega):
            # A plot id is a path or a name; a file name must not hold `/`.
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", plot_id).strip("_")
            specs[stem if len(vega) == 1 else f"{stem}_{index}"] = spec
    return specs


def render_pngs(specs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write each spec as `<stem>.png` into `out_dir`; the paths written."""
    try:
        import vl_convert
    except ImportError as exc:
        raise PlotsError("rendering plots needs vl-convert-python: pip install -e '.[ci]'") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, spec in specs.items():
        try:
            png = vl_convert.vegalite_to_png(spec, scale=2)
        except Exception as exc:  # vl-convert reports a bad spec as a plain ValueError
            raise PlotsError(f"plot {stem}: {exc}") from exc
        path = out_dir / f"{stem}.png"
        partial = out_dir / f".{stem}.png.tmp"
        partial.write_bytes(png)
        partial.replace(path)  # a reader never sees half an image
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for the PNG files")
    parser.add_argument("revisions", nargs="*", help="Git revisions or DVC experiment names")
    args = parser.parse_args(argv)
    try:
        written = render_pngs(plot_specs(args.revisions), args.out_dir)
    except PlotsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
