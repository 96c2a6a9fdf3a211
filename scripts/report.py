"""Print the tables a reviewer pastes into a pull request, the workspace against a revision
(default: main): a Git commit, branch or tag, or the name of a DVC experiment.

    python scripts/report.py [REV]        (or: make report REV=...)

1. Test accuracy: each model's accuracy in both runs, compared review by review on the
   same test reviews, with a 95% interval and McNemar's p (imdb_sentiment.evaluation.report);
   REV's predictions come from the DVC cache or remote;
2. Metrics: `dvc metrics diff REV --md`, its rows sorted by file;
3. Params: `dvc params diff REV --md`, likewise.
When REV has no metrics at all, sections 1 and 2 are one line that says so.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from imdb_sentiment.evaluation.predictions import PredictionsError
from imdb_sentiment.evaluation.report import accuracy_section
from imdb_sentiment.evaluation.revisions import (
    RevisionError,
    RevisionRun,
    WorkspaceRun,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
# A revision or experiment name is one word of the characters Git allows in one, and not an
# option: anything else stops here, before it reaches git or dvc.
REV_PATTERN = re.compile(r"[A-Za-z0-9._/@^~{}:+-]+")


def check_rev(rev: str) -> None:
    if not REV_PATTERN.fullmatch(rev) or rev.startswith("-"):
        shown = shlex.quote(rev.encode("unicode_escape").decode("ascii"))
        raise RevisionError(f"REV={shown}: not a Git revision or DVC experiment name")


def sorted_table(*command: str) -> str:
    """A `dvc ... diff --md` table with its rows sorted by file (DVC lists the files in no
    fixed order; each file keeps its keys in their order), so that two reports of the same
    runs are the same text."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RevisionError(f"{' '.join(command)}: {result.stderr.strip()}")
    lines = result.stdout.strip().splitlines()
    if len(lines) < 2:
        return "No differences.\n"
    rows = sorted(lines[2:], key=lambda row: row.split("|")[1].strip() if "|" in row else "")
    return "\n".join([*lines[:2], *rows]) + "\n"


def build(rev: str) -> str:
    check_rev(rev)
    commit, against = resolve(rev, ROOT)
    base = RevisionRun(commit, against, ROOT)
    parts = []
    if base.has_metrics():
        parts += [
            f"## Test accuracy: workspace against {against}\n",
            accuracy_section(base, WorkspaceRun(ROOT)),
            f"## Metrics: workspace against {against}\n",
            sorted_table("dvc", "metrics", "diff", rev, "--md"),
        ]
    else:
        parts += [
            f"## Metrics: workspace against {against}\n",
            f"{against} has no metrics: nothing to compare with (its pipeline never ran, or "
            "its dvc.lock and metrics/ were not committed).\n",
        ]
    parts += [
        f"## Params: workspace against {against}\n",
        sorted_table("dvc", "params", "diff", rev, "--md"),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1:
        print("usage: python scripts/report.py [REV]", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(build(args[0] if args else "main"))
    except (RevisionError, PredictionsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
