"""Checkpoints of `train_distilbert`: where they may go, when to resume from them, and
removing them, and nothing else, once the run is done.

The folder (`train_distilbert.output_dir`) lies outside the stage's outs, so `dvc repro`
keeps it and a killed run resumes from its last complete checkpoint. A marker file written
when the stage creates the folder holds a fingerprint of the params, data and base model:
a run with other settings starts over instead of resuming. The stage deletes only what it
can recognise as its own: `checkpoint-N` folders inside a folder that holds its marker.
It refuses, before training, a folder that is the repository or holds it, one of the
pipeline's outs (or inside or around one), or an existing non-empty folder without its
marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from imdb_sentiment.core.atomic import write_json
from imdb_sentiment.core.errors import StageError, one_line

log = logging.getLogger("imdb_sentiment.checkpoints")

PARAM = "train_distilbert.output_dir"
MARKER_FILE = "imdb_sentiment_checkpoints.json"
MARKER_OWNER = "imdb-sentiment train_distilbert"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
# What a checkpoint must hold to be resumed from; the Trainer writes trainer_state.json last.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json")


def pipeline_outs(root: Path = Path(".")) -> list[Path]:
    """Every out of the pipeline, as DVC reads dvc.yaml (none where there is no dvc.yaml)."""
    if not (root / "dvc.yaml").is_file():
        return []
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root), uninitialized=True) as repo:
            return [Path(out.def_path) for stage in repo.index.stages for out in stage.outs]
    except DvcException as exc:
        raise StageError(f"dvc.yaml: cannot read the pipeline's outs ({one_line(exc)})") from exc


def _related(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output_dir(output_dir: Path, protected: Iterable[Path] = ()) -> None:
    """Refuse, in one line, a checkpoint folder the stage could not safely clear."""
    root = Path.cwd().resolve()
    folder = (root / output_dir).resolve()
    named = f"{PARAM} = {str(output_dir)!r}"
    if folder == root or folder in root.parents:
        raise StageError(
            f"{named} is the repository or a folder above it; name a folder of its own"
        )
    for kept in (root / ".git", root / ".dvc", *(root / p for p in protected)):
        if _related(folder, kept.resolve()):
            raise StageError(
                f"{named} overlaps {kept.relative_to(root)}, which the project keeps; "
                "name a folder of its own, such as checkpoints/distilbert"
            )
    if folder.exists() and not folder.is_dir():
        raise StageError(f"{named} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER_FILE).is_file():
        raise StageError(
            f"{named} holds files this stage did not write; empty it or name another folder"
        )


def _hash_files(digest: Any, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)


def run_fingerprint(settings: Mapping[str, Any], data_dir: Path, model_dir: Path | None) -> str:
    """A hash of everything a checkpoint depends on: `settings` (params, process count,
    model name), the training data and a local base model's files."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    _hash_files(digest, data_dir)
    if model_dir is not None and model_dir.is_dir():
        _hash_files(digest, model_dir)
    return digest.hexdigest()


def _is_complete(checkpoint: Path) -> bool:
    """Whether the Trainer wrote `checkpoint` to the end: every file there, and the last one
    it writes, trainer_state.json, whole (a kill can cut that write short too)."""
    if not all((checkpoint / name).exists() for name in CHECKPOINT_FILES):
        return False
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def own_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """The `checkpoint-N` folders in `output_dir`, by step."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir() and not path.is_symlink():
            found.append((int(match.group(1)), path))
    return sorted(found)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoints in `output_dir` that were written to the end, oldest first."""
    return [path for _, path in own_checkpoints(output_dir) if _is_complete(path)]


def _stored_fingerprint(output_dir: Path) -> str | None:
    try:
        marker = json.loads((output_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != MARKER_OWNER:
        return None
    return marker.get("fingerprint")


def _remove_own_checkpoints(output_dir: Path) -> None:
    for _, path in own_checkpoints(output_dir):
        shutil.rmtree(path)


def prepare_checkpoints(output_dir: Path, fingerprint: str, is_main: bool) -> Path | None:
    """The checkpoint to resume from, if one was left by a run with the same fingerprint.

    Checkpoints of another run (other params or data) are removed, never resumed. Only the
    main process changes the folder; every process reaches the same answer.
    """
    stored = _stored_fingerprint(output_dir)
    if stored == fingerprint:
        checkpoints = complete_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    if is_main:
        if stored is not None:
            log.info("%s holds checkpoints of other params or data: starting over", output_dir)
            _remove_own_checkpoints(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            output_dir / MARKER_FILE, {"written_by": MARKER_OWNER, "fingerprint": fingerprint}
        )
    return None


def remove_checkpoints(output_dir: Path) -> None:
    """After a finished run: remove its checkpoints and marker, then the folder if that
    leaves it empty. Anything else in it stays."""
    if _stored_fingerprint(output_dir) is None:
        return
    _remove_own_checkpoints(output_dir)
    (output_dir / MARKER_FILE).unlink(missing_ok=True)
    try:
        output_dir.rmdir()
    except OSError:
        log.info("%s kept: it holds files this stage did not write", output_dir)
