"""Where the reviews come from: a Hugging Face dataset id, a folder of Parquet files or an
`aclImdb/` folder in the original layout, each read into one DataFrame per labeled split
(`text`, `label`).

Every column is checked on load: `text` holds strings (or bytes that decode as UTF-8),
`label` integers. Only regular files are read: in an aclImdb folder, an entry that is a
FIFO, a device, a socket or a link to nothing (or that loops) is skipped and counted in a
warning; a Parquet split that is not a regular file stops the stage in one line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.files import NotRegularFile, open_regular
from imdb_sentiment.core.hub import is_local_path, load_from_hub

log = logging.getLogger("imdb_sentiment.prepare")

LABELED_SPLITS = ("train", "test")
ACLIMDB_LABEL_DIRS = {"neg": 0, "pos": 1}
ACLIMDB_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")


def load_source(source: str) -> dict[str, pd.DataFrame]:
    """Load the labeled `train` and `test` splits of `source` as DataFrames (text, label)."""
    if not is_local_path(source):
        return _load_hub(source)
    root = Path(source).expanduser()
    if not root.exists():
        raise StageError(f"data.source={source!r}: no such file or folder")
    if not root.is_dir():
        raise StageError(f"data.source={source!r}: expected a folder, found a file")
    if (root / "train.parquet").exists() or (root / "test.parquet").exists():
        return _load_parquet(root)
    for candidate in (root, root / "aclImdb"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return _load_aclimdb(candidate)
    raise StageError(
        f"data.source={source!r}: folder in an unknown layout: expected train.parquet and "
        "test.parquet, or aclImdb's train/{pos,neg}/ and test/{pos,neg}/ folders"
    )


def _load_hub(dataset_id: str) -> dict[str, pd.DataFrame]:
    import datasets

    dataset = load_from_hub(
        lambda: datasets.load_dataset(dataset_id),
        param="data.source",
        value=dataset_id,
        hint="a local folder of Parquet files or an aclImdb/ folder",
    )
    missing = [split for split in LABELED_SPLITS if split not in dataset]
    if missing:
        raise StageError(f"data.source={dataset_id!r}: the dataset has no {missing} split")
    return {
        split: _check_columns(dataset[split].to_pandas(), dataset_id) for split in LABELED_SPLITS
    }


def _load_parquet(root: Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for split in LABELED_SPLITS:
        path = root / f"{split}.parquet"
        if not path.exists():
            raise StageError(f"data.source={str(root)!r}: {path.name} is missing")
        try:
            with open_regular(path) as handle:
                frame = pd.read_parquet(handle)
        except StageError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StageError(f"{path}: not a readable Parquet file ({one_line(exc, 200)})") from exc
        frames[split] = _check_columns(frame, str(path))
    return frames


def _check_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """`text` and `label`, each of the right type, or one line naming what is wrong."""
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise StageError(f"{where}: missing column(s) {sorted(missing)}; has {list(frame.columns)}")
    label = frame["label"]
    if not pd.api.types.is_integer_dtype(label.dtype) or pd.api.types.is_bool_dtype(label.dtype):
        raise StageError(f"{where}: column 'label' holds {label.dtype}, not the integers 0 and 1")
    return pd.DataFrame({"text": _texts(frame["text"], where), "label": label})


def _texts(column: pd.Series, where: str) -> pd.Series:
    """The text column as strings (missing values kept: cleaning drops them as empty)."""
    if isinstance(column.dtype, pd.StringDtype):
        return column
    if not pd.api.types.is_object_dtype(column.dtype):
        raise StageError(f"{where}: column 'text' holds {column.dtype}, not text")
    texts = []
    for row, value in enumerate(column.tolist(), 1):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise StageError(
                    f"{where}: row {row}: text is not UTF-8 ({exc.reason} at byte {exc.start})"
                ) from exc
        elif not (isinstance(value, str) or value is None or value != value):  # NaN
            raise StageError(f"{where}: row {row}: text is a {type(value).__name__}, not a string")
        texts.append(value)
    return pd.Series(texts, index=column.index, dtype=object)


def _load_aclimdb(root: Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for split in LABELED_SPLITS:
        texts, labels = [], []
        for label_dir, label in ACLIMDB_LABEL_DIRS.items():
            folder = root / split / label_dir
            if not folder.is_dir():
                raise StageError(f"data.source: {folder} is missing (aclImdb layout)")
            # Sort by the numeric id so the row order, and so the seeded split, is stable.
            files = sorted(
                (path for path in folder.iterdir() if ACLIMDB_NAME.match(path.name)),
                key=lambda path: int(ACLIMDB_NAME.match(path.name).group(1)),
            )
            skipped: list[str] = []
            for path in files:
                text = _read_review(path, skipped)
                if text is not None:
                    texts.append(text)
                    labels.append(label)
            if skipped:
                log.warning(
                    "%s: skipped %d entr%s that %s not a regular file: %s",
                    folder,
                    len(skipped),
                    "y" if len(skipped) == 1 else "ies",
                    "is" if len(skipped) == 1 else "are",
                    "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else ""),
                )
        frames[split] = pd.DataFrame({"text": texts, "label": labels})
    return frames


def _read_review(path: Path, skipped: list[str]) -> str | None:
    """The text of one review file, or None (and a note in `skipped`) when `path` is not a
    regular file: a FIFO, device or socket, a folder, a link to nothing or that loops."""
    try:
        with open_regular(path) as handle:
            data = handle.read()
    except NotRegularFile as exc:
        skipped.append(f"{path.name} ({exc.kind})")
        return None
    except FileNotFoundError:
        skipped.append(f"{path.name} (a link to nothing)")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
