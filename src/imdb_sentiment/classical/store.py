"""Saving and loading the classical models as skops files.

A saved classical model is one fitted scikit-learn `Pipeline` in `models/<name>/model.skops`
whose input is a DataFrame with the columns `text` and `tokens` (as in
`data/tokenized/frame/`) and which has `predict_proba` (column 1 = P(positive)).

skops builds only the types listed in `TRUSTED_TYPES`, never arbitrary pickled code; a
forest's trees, the vectorizers' vocabularies and every sparse matrix are checked after
loading (indices in range), since a file built from trusted types alone can still point
them outside their arrays and crash the process when it predicts.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from imdb_sentiment.classical.features import (
    NBEvidence,
    NBLogCountRatio,
    PresenceVectorizer,
    pipeline_positive_proba,
)
from imdb_sentiment.core.errors import StageError, one_line

MODEL_FILE = "model.skops"
# zip entries carry a modification time; a fixed one makes the same model the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Attributes that hold an `id()` of the process that fitted the estimator (a cache key of
# the vectorizers): zeroed in the saved state, which they would make differ per process.
PROCESS_ATTRIBUTES = frozenset({"_stop_words_id"})

# Every type a saved classical pipeline may hold; skops refuses to build anything else.
TRUSTED_TYPES = (
    "builtins.slice",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.feature_selection._univariate_selection.SelectKBest",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    *(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in (NBEvidence, NBLogCountRatio, PresenceVectorizer)
    ),
)


def _canonical_schema(schema: Any, ids: dict[int, int], files: dict[str, str]) -> Any:
    """Replace the `id()`-based object ids and file names skops writes with numbers in order
    of appearance and zero `PROCESS_ATTRIBUTES`, so that nothing changes from one process
    to the next."""
    if isinstance(schema, list):
        return [_canonical_schema(item, ids, files) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in PROCESS_ATTRIBUTES and isinstance(value, dict) and "content" in value:
            # Kept (skops pairs a dict's keys with a list of their types) but zeroed: a
            # cache key that matches nothing only makes the vectorizer check again.
            value = {**value, "content": "0"}
        if key == "__id__" and isinstance(value, int):
            value = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str):
            value = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
        else:
            value = _canonical_schema(value, ids, files)
        result[key] = value
    return result


def model_bytes(pipeline: Pipeline) -> bytes:
    """The skops archive of `pipeline`, made deterministic: the same fitted pipeline gives
    the same bytes in any process (skops names entries after `id()`s and uuids and stamps
    them with the current time, which would change DVC's hash on every run)."""
    import skops.io

    raw = zipfile.ZipFile(io.BytesIO(skops.io.dumps(pipeline)))
    schema = json.loads(raw.read("schema.json"))
    files: dict[str, str] = {}
    schema = _canonical_schema(schema, {}, files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for old_name, new_name in sorted(files.items(), key=lambda item: item[1]):
            entry = zipfile.ZipInfo(new_name, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, raw.read(old_name))
        entry = zipfile.ZipInfo("schema.json", date_time=ZIP_EPOCH)
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, json.dumps(schema, indent=2))
    return out.getvalue()


def save_classical_model(pipeline: Pipeline, model_dir: Path) -> Path:
    """Write `pipeline` as `model_dir/model.skops` (deterministic bytes); return the path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    path.write_bytes(model_bytes(pipeline))
    return path


def _check_tree(tree: Any, n_features: int, where: str) -> None:
    """Every index a fitted tree follows stays inside its own arrays."""
    from sklearn.tree._tree import Tree

    if not isinstance(tree, Tree):
        raise StageError(f"{where}: a decision tree has no tree structure")
    nodes = int(tree.node_count)
    # Checked before the arrays are read: they are views of `node_count` nodes over a
    # buffer of `capacity` nodes.
    if nodes < 1 or nodes > tree.capacity:
        raise StageError(f"{where}: a tree's node count does not match its arrays")
    if tree.n_outputs != 1 or tree.max_n_classes != 2 or tree.n_features != n_features:
        raise StageError(f"{where}: a tree's shape does not match its forest")
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, value = np.asarray(tree.feature), np.asarray(tree.value)
    if not (len(left) == len(right) == len(feature) == value.shape[0] == nodes):
        raise StageError(f"{where}: a tree's arrays do not match its {nodes} nodes")
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise StageError(f"{where}: a tree node has one child")
    inner = ~leaf
    children = np.concatenate([left[inner], right[inner]])
    if children.size and (children.min() <= 0 or children.max() >= nodes):
        raise StageError(f"{where}: a tree's child index is out of range")
    # A child always comes after its parent in sklearn's arrays: no cycles.
    parents = np.flatnonzero(inner)
    if (left[inner] <= parents).any() or (right[inner] <= parents).any():
        raise StageError(f"{where}: a tree's child index points backwards")
    if inner.any() and (feature[inner].min() < 0 or feature[inner].max() >= n_features):
        raise StageError(f"{where}: a tree's feature index is out of range")
    if value.shape[1:] != (1, 2) or not np.isfinite(value).all():
        raise StageError(f"{where}: a tree's values are malformed")


def _check_forest(forest: Any, where: str) -> None:
    """The forest's trees are decision trees shaped like the forest (it calls them without
    checking their input), each with a tree that stays inside its arrays."""
    from sklearn.tree import DecisionTreeClassifier

    n_features = int(forest.n_features_in_)
    if forest.n_outputs_ != 1 or forest.n_classes_ != 2 or not forest.estimators_:
        raise StageError(f"{where}: the forest is not a fitted two-class forest")
    for tree in forest.estimators_:
        if not isinstance(tree, DecisionTreeClassifier) or (
            tree.n_features_in_ != n_features or tree.n_outputs_ != 1 or tree.n_classes_ != 2
        ):
            raise StageError(f"{where}: a forest's tree does not match the forest")
        _check_tree(tree.tree_, n_features, where)


def _check_vocabulary(vectorizer: Any, where: str) -> None:
    """A vectorizer's column indices are 0..n-1 (sparse matrices are built from them
    without a bounds check)."""
    vocabulary = getattr(vectorizer, "vocabulary_", None)
    if vocabulary is None:
        return
    if not isinstance(vocabulary, dict):
        raise StageError(f"{where}: a vectorizer's vocabulary is not a mapping")
    try:
        columns = np.sort(np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary)))
    except (TypeError, ValueError, OverflowError) as exc:
        raise StageError(f"{where}: a vectorizer's vocabulary holds non-integer columns") from exc
    if not np.array_equal(columns, np.arange(len(vocabulary))):
        raise StageError(f"{where}: a vectorizer's vocabulary columns are not 0..n-1")


def _reachable(root: Any) -> Iterator[Any]:
    """Every estimator, container and sparse matrix reachable from `root` (no recursion:
    a crafted file may nest deeply)."""
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator

    containers = (BaseEstimator, list, tuple, dict)
    stack, seen = [root], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseEstimator):
            children = vars(item).values()
        elif isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        stack.extend(c for c in children if isinstance(c, containers) or sp.issparse(c))


def check_fitted_pipeline(pipeline: Any, where: str) -> None:
    """Stop on a pipeline that was not fitted, or whose trees, vocabularies or sparse
    matrices point outside their arrays (a crash, not an error, when it predicts)."""
    import scipy.sparse as sp
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import NotFittedError
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "predict_proba"):
        raise StageError(f"{where} does not hold a classifier Pipeline")
    try:
        for _, step in pipeline.steps:
            if step not in (None, "passthrough"):
                check_is_fitted(step)
    except (NotFittedError, TypeError) as exc:
        raise StageError(f"{where}: the pipeline is not fitted ({one_line(exc)})") from exc
    final = pipeline.steps[-1][1]
    if list(getattr(final, "classes_", [])) != [0, 1]:
        raise StageError(f"{where}: the classifier's classes are not [0, 1]")
    try:
        for item in _reachable(pipeline):
            if isinstance(item, RandomForestClassifier):
                _check_forest(item, where)
            elif isinstance(item, DecisionTreeClassifier) and hasattr(item, "tree_"):
                _check_tree(item.tree_, int(item.n_features_in_), where)
            elif isinstance(item, CountVectorizer):
                _check_vocabulary(item, where)
            elif sp.issparse(item):
                item.check_format(full_check=True)
    except StageError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise StageError(f"{where}: the model is malformed ({one_line(exc, 200)})") from exc


def _check_schema(path: Path) -> None:
    """The archive holds a schema.json that is a JSON object, as skops writes it."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except RecursionError as exc:
        raise StageError(f"{path} is nested too deeply to be a model") from exc
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise StageError(f"{path} is not a skops model archive ({one_line(exc, 200)})") from exc
    if not isinstance(schema, dict):
        raise StageError(f"{path}: schema.json is a {type(schema).__name__}, not an object")


def load_classical_model(model_dir: Path | str) -> Pipeline:
    """Load `model_dir/model.skops`, refusing any type outside `TRUSTED_TYPES`, then check
    that it is a fitted classifier whose arrays stay inside their bounds."""
    import skops.io

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise StageError(f"{path} is missing: run the stage that trains it first")
    _check_schema(path)
    try:
        untrusted = set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
        if untrusted:
            raise StageError(f"{path} holds types that are not trusted: {sorted(untrusted)}")
        pipeline = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except StageError:
        raise
    except RecursionError as exc:
        raise StageError(f"{path} is nested too deeply to be a model") from exc
    except Exception as exc:  # a damaged or crafted file fails in many ways inside skops
        raise StageError(
            f"{path} is not a valid skops model ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc
    check_fitted_pipeline(pipeline, str(path))
    return pipeline


def classical_positive_proba(pipeline: Pipeline, frame: Any, where: str) -> np.ndarray:
    """P(positive) of `frame`'s reviews; a loaded model that fails on them (arrays of the
    wrong shape in a crafted file) is one line naming `where`."""
    try:
        return pipeline_positive_proba(pipeline, frame)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
        raise StageError(
            f"{where}: the model cannot score reviews ({type(exc).__name__}: {one_line(exc, 200)})"
        ) from exc
