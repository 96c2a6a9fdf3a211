"""Where the reviews come from: a Hugging Face dataset id, a folder of Parquet files or an
`aclImdb/` folder in the original layout, each read into one DataFrame per labeled split
(`text`, `label`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from imdb_sentiment.core.errors import StageError
from imdb_sentiment.core.hub import is_local_path, load_from_hub

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
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StageError(f"{path}: not a readable Parquet file ({exc})") from exc
        frames[split] = _check_columns(frame, str(path))
    return frames


def _check_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise StageError(f"{where}: missing column(s) {sorted(missing)}; has {list(frame.columns)}")
    return frame[["text", "label"]]


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
            for path in files:
                try:
                    texts.append(path.read_bytes().decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise StageError(
                        f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
                    ) from exc
                labels.append(label)
        frames[split] = pd.DataFrame({"text": texts, "label": labels})
    return frames
