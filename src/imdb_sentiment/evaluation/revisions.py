"""The runs a report compares: the workspace, and a Git revision or DVC experiment read the
DVC way (`dvc.api.DVCFileSystem` at that commit: files kept in Git from Git, outs from the
local DVC cache, else fetched from the default remote).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from imdb_sentiment.core.paths import METRICS_DIR, TEST_PREDICTIONS_DIR
from imdb_sentiment.evaluation.predictions import (
    PredictionsError,
    read_predictions,
    read_summary,
)


class RevisionError(Exception):
    """A revision that names no commit and no experiment."""


def resolve(rev: str, root: Path = Path(".")) -> tuple[str, str]:
    """The commit of `rev` (a Git revision, or the name of a DVC experiment, resolved as
    `dvc metrics diff` resolves it) and how the report names it."""
    from dvc.scm import SCM, RevError, SCMError, resolve_rev
    from scmrepo.exceptions import RevError as GitRevError

    try:
        scm = SCM(str(root))
    except SCMError as exc:
        raise RevisionError(f"{root.resolve()}: not in a Git repository") from exc
    try:
        return scm.resolve_rev(rev), rev
    except GitRevError:
        pass
    try:
        return resolve_rev(scm, rev), f"experiment {rev}"
    except RevError as exc:
        reason = str(exc) if "ambiguous" in str(exc) else "no such Git revision or DVC experiment"
        raise RevisionError(f"{rev}: {reason}") from exc


class WorkspaceRun:
    """The runs' files as they are in the working tree."""

    label = "workspace"

    def __init__(self, root: Path = Path(".")) -> None:
        self.root = root

    def has_metrics(self) -> bool:
        return any((self.root / METRICS_DIR).rglob("*.json"))

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {
            path.stem: read_summary(path.read_text(encoding="utf-8"), str(path))
            for path in sorted((self.root / TEST_PREDICTIONS_DIR).glob("*.json"))
        }

    def predictions(self, model: str) -> pd.DataFrame:
        path = TEST_PREDICTIONS_DIR / f"{model}.parquet"
        if not (self.root / path).is_file():
            raise PredictionsError(f"{path} is missing from the workspace: run `dvc checkout`")
        return read_predictions((self.root / path).read_bytes(), str(path))


class RevisionRun:
    """A commit's files (an experiment is a commit too), read through DVC."""

    def __init__(self, commit: str, label: str, root: Path = Path(".")) -> None:
        from dvc.api import DVCFileSystem

        self.commit, self.label = commit, label
        self.fs = DVCFileSystem(str(root), rev=commit)

    def has_metrics(self) -> bool:
        return bool(self.fs.exists(METRICS_DIR.as_posix()) and self.fs.find(METRICS_DIR.as_posix()))

    def summaries(self) -> dict[str, dict[str, Any]]:
        folder = TEST_PREDICTIONS_DIR.as_posix()
        if not self.fs.isdir(folder):
            return {}
        return {
            Path(path).stem: read_summary(self.fs.read_text(path), f"{self.label}: {path}")
            for path in sorted(self.fs.ls(folder, detail=False))
            if path.endswith(".json")
        }

    def predictions(self, model: str) -> pd.DataFrame:
        path = (TEST_PREDICTIONS_DIR / f"{model}.parquet").as_posix()
        try:
            data = self.fs.read_bytes(path)
        except FileNotFoundError as exc:
            raise PredictionsError(
                f"{self.label}: {path} is in neither the DVC cache nor the remote: `dvc push` "
                "it where that run was made (`dvc exp push origin NAME` for an experiment), or "
                "run it again here"
            ) from exc
        return read_predictions(data, f"{self.label}: {path}")
