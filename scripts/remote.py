"""`make pull` / `make push`: `dvc pull` / `dvc push` with the DVC remote named when it
fails. DVC's own message ("Some of the cache files do not exist neither locally nor on
remote") names no remote; this adds one last line with the remote, its URL and what to do.

    python scripts/remote.py pull|push [DVC OPTIONS...]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARING = "README: Sharing"


def remote_of(args: list[str]) -> tuple[str | None, str | None]:
    """The remote the command used (`-r NAME` or the default) and its URL as DVC resolves
    it (a relative folder made absolute); None for what is not set."""
    from dvc.repo import Repo

    name = None
    for flag in ("-r", "--remote"):
        if flag in args[:-1]:
            name = args[args.index(flag) + 1]
    with Repo(str(ROOT)) as repo:
        config = repo.config
        name = name or config["core"].get("remote")
        if not name:
            return None, None
        return name, (config["remote"].get(name) or {}).get("url")


def explain(action: str, args: list[str]) -> str:
    """One line: why `dvc <action>` may have failed, naming the remote and its URL."""
    name, url = remote_of(args)
    if name is None:
        return (
            f"error: dvc {action}: no DVC remote is set: dvc remote add -d team <url> ({SHARING})"
        )
    if url is None:
        return f"error: dvc {action}: no remote {name!r}: dvc remote list shows those there are"
    where = f"remote {name!r} ({url})"
    if "://" not in url:  # a folder
        if not Path(url).is_dir():
            return (
                f"error: dvc {action}: remote {name!r} is the folder {url}, which this clone "
                f"cannot reach: set the team's remote, `dvc remote add -d team <url>` ({SHARING})"
            )
        if action == "pull":
            return (
                f"error: dvc pull: {where} lacks files this commit needs: `make push` in the "
                "clone that made them, or `dvc repro` to rebuild them"
            )
        return f"error: dvc push: could not write to {where}: check that folder's permissions"
    return (
        f"error: dvc {action}: {where} failed: check its URL, endpoint and credentials "
        f"(dvc remote modify --local {name} ...; {SHARING})"
    )


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("pull", "push"):
        sys.exit("usage: python scripts/remote.py pull|push [DVC OPTIONS...]")
    action, args = sys.argv[1], sys.argv[2:]
    status = subprocess.run([sys.executable, "-m", "dvc", action, *args], cwd=ROOT).returncode
    if status != 0:
        print(explain(action, args), file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
