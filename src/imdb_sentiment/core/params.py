"""params.yaml: read it as DVC does, and validate each stage's section against its schema.

Every stage's `main()` reads the file once with :func:`load_params`, then its own section
with :func:`load_section`, so a bad value stops the stage with one line naming the key
before any data or model is loaded. Types are strict: `seed: true` or
`n_estimators: "20"` are errors, never silently converted.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.files import NotRegularFile, read_regular
from imdb_sentiment.core.paths import PARAMS_FILE

# The top-level keys of params.yaml: the shared scalars and one section per stage.
TOP_LEVEL_KEYS = (
    "seed",
    "data",
    "model",
    "prepare",
    "tokenize",
    "train_rf",
    "train_linear",
    "train_distilbert",
    "export_onnx",
    "evaluate",
    "predict",
    "score",
)
# The sections that the imdb-predict and imdb-score commands read, and no stage: no stage
# declares them in dvc.yaml, so changing one reruns nothing.
COMMAND_SECTIONS = ("predict", "score")
# params.yaml is a page of settings: far larger, or far more values once its aliases are
# expanded (a "billion laughs" file), is refused before it costs any memory or time.
MAX_PARAMS_BYTES = 1_000_000
MAX_PARAMS_VALUES = 100_000


class Params(BaseModel):
    """Base of every params schema: unknown keys are errors, types are strict (an int
    is a valid float, nothing else converts), floats are finite (no .inf or .nan), values
    are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def short(value: Any) -> str:
    """A repr of `value` short enough for one line, whatever its size or depth."""
    return one_line(SHORT_REPR.repr(value), 160)


SHORT_REPR = reprlib.Repr()
SHORT_REPR.maxlevel, SHORT_REPR.maxstring, SHORT_REPR.maxother = 2, 40, 40
SHORT_REPR.maxlist = SHORT_REPR.maxdict = SHORT_REPR.maxtuple = SHORT_REPR.maxset = 4


class DataParams(Params):
    # A Hugging Face dataset id, a folder of Parquet files, or an aclImdb/ folder.
    source: str = Field("stanfordnlp/imdb", min_length=1)


class ModelParams(Params):
    # A Hugging Face model id or a local directory saved with save_pretrained.
    name: str = Field("distilbert/distilbert-base-uncased", min_length=1)


class SharedParams(Params):
    """The top-level keys that several stages read."""

    seed: int = Field(42, ge=0, le=2**32 - 1)


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """` (did you mean X?)` for the valid name closest to `name`, or '' when none is close."""
    match = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def expanded_size(root: Node, limit: int) -> int:
    """How many values the document holds once every alias is expanded, counted on the
    composed graph (where an alias is a second reference to one node) without expanding
    anything; stops counting past `limit`. An alias inside its own anchor is an error."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(child)] for child in children))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise StageError(f"{PARAMS_FILE}: an alias refers to the value that holds it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml as DVC does: YAML 1.2, so `5e-05` written by `dvc exp run -S` is a
    float. An unknown top-level key (a misspelled section) is an error naming it; a file
    over MAX_PARAMS_BYTES, or over MAX_PARAMS_VALUES values once its aliases are expanded,
    is refused before it is built."""
    try:
        text = read_regular(path, limit=MAX_PARAMS_BYTES).decode("utf-8")
        yaml = YAML(typ="safe", pure=True)
        node = yaml.compose(text)
        values = expanded_size(node, MAX_PARAMS_VALUES) if node is not None else 0
        if values > MAX_PARAMS_VALUES:
            raise StageError(
                f"{path} holds more than {MAX_PARAMS_VALUES:,} values once its aliases are "
                "expanded; params.yaml is a page of settings"
            )
        params = yaml.load(text)
    except FileNotFoundError as exc:
        raise StageError(f"{path} not found: run the stage from the repository root") from exc
    except NotRegularFile as exc:
        raise StageError(f"{path} is {exc.kind}, not a YAML file") from exc
    except UnicodeDecodeError as exc:
        raise StageError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except YAMLError as exc:
        raise StageError(f"{path} is not valid YAML: {one_line(exc, 300)}") from exc
    except RecursionError as exc:
        raise StageError(f"{path} is not valid YAML: nested too deeply") from exc
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise StageError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    for key in params:
        if key not in TOP_LEVEL_KEYS:
            raise StageError(
                f"{path}: unknown key {short(key)}{closest(str(key)[:100], TOP_LEVEL_KEYS)}; "
                f"valid keys: {', '.join(TOP_LEVEL_KEYS)}"
            )
    return params


SchemaT = TypeVar("SchemaT", bound=Params)


def load_section(params: Mapping[str, Any], key: str, schema: type[SchemaT]) -> SchemaT:
    """Validate one section of params.yaml against `schema`; fail with one line naming the key.

    A missing section takes the schema's defaults, so params.yaml only needs what changes.
    """
    raw = params.get(key)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise StageError(f"params.yaml: {key} must be a mapping of keys, got {short(raw)}")
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as exc:
        raise StageError(describe_validation_error(key, schema, exc)) from exc


def load_subset(params: Mapping[str, Any], key: str, schema: type[SchemaT]) -> SchemaT:
    """Validate the keys of `schema` in section `key`, ignoring the section's other keys
    (another stage's, validated there)."""
    raw = params.get(key) or {}
    if not isinstance(raw, Mapping):
        raise StageError(f"params.yaml: {key} must be a mapping of keys, got {short(raw)}")
    return load_section({key: {k: raw[k] for k in schema.model_fields if k in raw}}, key, schema)


def load_shared(params: Mapping[str, Any]) -> SharedParams:
    """Validate the top-level scalar keys (the seed) that several stages share."""
    shared = {k: params[k] for k in SharedParams.model_fields if k in params}
    try:
        return SharedParams.model_validate(shared)
    except ValidationError as exc:
        raise StageError(describe_validation_error(None, SharedParams, exc)) from exc


def describe_validation_error(
    section: str | None, schema: type[BaseModel], exc: ValidationError
) -> str:
    """One line for the first error: the exact key, the value given and what is valid."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    key = ".".join(part for part in (section, loc) if part)
    if first["type"] == "extra_forbidden":
        fields = list(schema.model_fields)
        return (
            f"params.yaml: unknown key {one_line(key, 100)}{closest(loc[:100], fields)}; "
            f"valid keys of {section or 'the top level'}: {', '.join(fields)}"
        )
    if first["type"] == "missing":
        return f"params.yaml: missing key {key}"
    message = first["msg"].removeprefix("Value error, ")
    return f"params.yaml: {one_line(key, 100)} = {short(first.get('input'))}: {message}"
