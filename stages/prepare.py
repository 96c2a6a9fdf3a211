"""prepare: load the IMDb reviews, clean them and write train / validation / test splits.

Reads `data.source` (a Hugging Face dataset id, a folder of Parquet files, or an aclImdb/
folder), cleans the text, carves a stratified, seeded validation split out of train (the
test split is never used to choose anything) and writes `data/prepared/{split}.parquet`
with columns `text` and `label`, plus the row counts to `summaries/prepare.json`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
from pydantic import Field
from sklearn.model_selection import train_test_split

from stages.atomic import atomic_outputs, json_text
from stages.cleaning import CleaningParams, clean_text
from stages.errors import StageError, run_stage
from stages.hub import is_local_path, load_from_hub
from stages.params import DataParams, load_params, load_section, load_shared
from stages.paths import PREPARED_DIR, SUMMARIES_DIR

log = logging.getLogger("imdb_sentiment.prepare")

SUMMARY_FILE = SUMMARIES_DIR / "prepare.json"
LABELED_SPLITS = ("train", "test")
ACLIMDB_LABEL_DIRS = {"neg": 0, "pos": 1}
ACLIMDB_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")


class PrepareParams(CleaningParams):
    validation_size: float = Field(0.1, gt=0, lt=1)
    drop_duplicates: bool = False
    # Drop from train and validation the reviews that also occur, word for word after
    # cleaning, in the test split, so that the test split measures generalisation.
    drop_test_overlap: bool = False
    max_train_samples: int | None = Field(None, ge=2)
    max_validation_samples: int | None = Field(None, ge=2)
    max_test_samples: int | None = Field(None, ge=2)


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


def clean_split(
    frame: pd.DataFrame, split: str, params: PrepareParams
) -> tuple[pd.DataFrame, dict]:
    """Check labels, clean text, drop empty reviews (and duplicates if asked); return the
    cleaned frame and the counts of what was dropped."""
    if frame.empty:
        raise StageError(f"{split} split is empty")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        example = frame["label"][bad].iloc[0]
        example = example.item() if hasattr(example, "item") else example
        raise StageError(
            f"{split} split: {int(bad.sum())} label(s) outside {{0, 1}}, e.g. {example!r}"
        )
    texts = frame["text"].where(frame["text"].notna(), "").astype(str)
    texts = texts.map(
        lambda text: clean_text(
            text, clean_html=params.clean_html, normalize_whitespace=params.normalize_whitespace
        )
    )
    cleaned = pd.DataFrame({"text": texts, "label": labels.astype("int64")})
    empty = cleaned["text"].str.strip() == ""
    cleaned = cleaned[~empty]
    dropped = {"empty": int(empty.sum())}
    if params.drop_duplicates:
        duplicated = cleaned.duplicated(subset="text")
        cleaned = cleaned[~duplicated]
        dropped["duplicates"] = int(duplicated.sum())
    for reason, count in dropped.items():
        if count:
            log.warning("%s: dropped %d %s review(s)", split, count, reason)
    if cleaned.empty:
        raise StageError(f"{split} split is empty after dropping empty reviews")
    if cleaned["label"].nunique() < 2:
        raise StageError(f"{split} split holds only label {int(cleaned['label'].iloc[0])}")
    return cleaned.reset_index(drop=True), dropped


def stratified_sample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """At most `size` rows of `frame`, drawn with `seed` and the label balance kept."""
    if size is None or size >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    return sample.reset_index(drop=True)


def test_overlap(splits: dict[str, pd.DataFrame]) -> int:
    """How many test reviews occur word for word in train or validation."""
    seen = set(splits["train"]["text"]) | set(splits["validation"]["text"])
    return int(splits["test"]["text"].isin(seen).sum())


def split_validation(
    train: pd.DataFrame, validation_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a stratified, seeded validation slice out of train."""
    try:
        fit, validation = train_test_split(
            train, test_size=validation_size, stratify=train["label"], random_state=seed
        )
    except ValueError as exc:
        raise StageError(
            f"prepare.validation_size={validation_size}: cannot split {len(train)} train "
            f"reviews into two stratified parts ({exc})"
        ) from exc
    return fit.reset_index(drop=True), validation.reset_index(drop=True)


def main() -> None:
    params = load_params()
    config = load_section(params, "prepare", PrepareParams)
    data = load_section(params, "data", DataParams)
    seed = load_shared(params).seed

    log.info("loading %s", data.source)
    raw = load_source(data.source)
    cleaned, dropped = {}, {}
    for split, frame in raw.items():
        cleaned[split], dropped[split] = clean_split(frame, split, config)

    train, validation = split_validation(cleaned["train"], config.validation_size, seed)
    splits = {
        "train": stratified_sample(train, config.max_train_samples, seed),
        "validation": stratified_sample(validation, config.max_validation_samples, seed),
        "test": stratified_sample(cleaned["test"], config.max_test_samples, seed),
    }

    overlap = test_overlap(splits)
    if overlap:
        log.warning(
            "%d test review(s) also occur word for word in train or validation%s",
            overlap,
            ": dropped from train and validation"
            if config.drop_test_overlap
            else " (prepare.drop_test_overlap: true drops them there)",
        )
    if config.drop_test_overlap:
        seen = set(splits["test"]["text"])
        for split in ("train", "validation"):
            in_test = splits[split]["text"].isin(seen)
            splits[split] = splits[split][~in_test].reset_index(drop=True)
            dropped.setdefault(split, {})["test_overlap"] = int(in_test.sum())

    rows = {split: len(frame) for split, frame in splits.items()}
    summary = {
        "rows": rows,
        "positive_share": {
            split: round(float(frame["label"].mean()), 6) for split, frame in splits.items()
        },
        "test_reviews_also_in_train": overlap,
        "dropped": {
            f"{split}_{reason}": count
            for split, counts in dropped.items()
            for reason, count in counts.items()
        },
    }
    # Neither out is replaced until both are written.
    with atomic_outputs(PREPARED_DIR, SUMMARY_FILE) as (out_dir, summary_file):
        out_dir.mkdir()
        for split, frame in splits.items():
            frame.to_parquet(out_dir / f"{split}.parquet", index=False)
        summary_file.write_text(json_text(summary), encoding="utf-8")
    log.info("wrote %s to %s", rows, PREPARED_DIR)


if __name__ == "__main__":
    run_stage(main)
