"""Post `make report REV=<base>` as the pull request's one report comment.

    python scripts/pr_comment.py REV --pr NUMBER [--plots-url URL] [--output FILE]
    python scripts/pr_comment.py REV --output FILE        (writes the body, posts nothing)

The body is exactly what `scripts/report.py REV` prints (the test-accuracy table with its
significance, the metrics and params tables of the workspace against REV: a commit, branch,
tag or DVC experiment name), plus a link to the plots when --plots-url is given. With --pr
it is posted with the GitHub CLI, which edits the last comment the token's user left on that
pull request, or creates one the first time: later pushes update the comment in place
instead of adding one each. `gh` reads its token from GH_TOKEN.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPORT_SCRIPT = Path(__file__).resolve().parent / "report.py"
# GitHub refuses comments over 65,536 characters; the job log keeps the whole report.
MAX_COMMENT_CHARS = 65_000


class CommentError(Exception):
    """A failure worth one `error:` line."""


def report(rev: str) -> str:
    """What `scripts/report.py REV` prints."""
    result = subprocess.run(
        [sys.executable, str(REPORT_SCRIPT), rev], capture_output=True, text=True
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise CommentError(lines[-1].removeprefix("error: "))
    return result.stdout


def comment_body(report_text: str, plots_url: str | None) -> str:
    body = report_text
    if plots_url:
        body += f"\n[Plots: `dvc plots diff` as PNG images]({plots_url})\n"
    if len(body) > MAX_COMMENT_CHARS:
        note = "\n\n(cut: the whole report is in the job's log)\n"
        body = body[: MAX_COMMENT_CHARS - len(note)] + note
    return body


def post(body: str, pr: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as handle:
        handle.write(body)
    try:
        result = subprocess.run(
            [
                "gh",
                "pr",
                "comment",
                pr,
                "--edit-last",
                "--create-if-none",
                "--body-file",
                handle.name,
            ],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError as exc:
        raise CommentError("the GitHub CLI (gh) is not installed") from exc
    finally:
        Path(handle.name).unlink()
    if result.returncode != 0:
        raise CommentError(f"gh pr comment {pr}: {result.stderr.strip()}")
    print(result.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="commit, branch, tag or DVC experiment to compare against")
    parser.add_argument("--pr", help="pull request number (or URL) to comment on")
    parser.add_argument("--plots-url", help="link to the rendered `dvc plots diff` images")
    parser.add_argument("--output", type=Path, help="also write the comment body to this file")
    args = parser.parse_args(argv)
    if not args.pr and not args.output:
        parser.error("give --pr NUMBER to post, --output FILE to write the body, or both")
    try:
        body = comment_body(report(args.rev), args.plots_url)
        sys.stdout.write(body)
        if args.output:
            args.output.write_text(body, encoding="utf-8")
        if args.pr:
            post(body, args.pr)
    except CommentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
