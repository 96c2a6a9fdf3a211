"""params.yaml: read it as DVC does, and validate each stage's section against its schema.

Every stage's `main()` reads the file once with :func:`load_params`, then its own section
with :func:`load_section`, so a bad value stops the stage with one line naming the key
before any data or model is loaded. Types are strict: `seed: true` or
`n_estimators: "20"` are errors, never silently converted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from imdb_sentiment.core.errors import StageError
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
)


class Params(BaseModel):
    """Base of every params schema: unknown keys are errors, types are strict (an int
    is a valid float, nothing else converts), values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Read params.yaml as DVC does: YAML 1.2, so `5e-05` written by `dvc exp run -S` is a
    float. An unknown top-level key (a misspelled section) is an error naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            params = YAML(typ="safe", pure=True).load(handle)
    except FileNotFoundError as exc:
        raise StageError(f"{path} not found: run the stage from the repository root") from exc
    except IsADirectoryError as exc:
        raise StageError(f"{path} is a folder, not a YAML file") from exc
    except UnicodeDecodeError as exc:
        raise StageError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except YAMLError as exc:
        raise StageError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise StageError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    for key in params:
        if key not in TOP_LEVEL_KEYS:
            raise StageError(
                f"{path}: unknown key {key!r}{closest(str(key), TOP_LEVEL_KEYS)}; "
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
        raise StageError(f"params.yaml: {key} must be a mapping of keys, got {raw!r}")
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as exc:
        raise StageError(describe_validation_error(key, schema, exc)) from exc


def load_subset(params: Mapping[str, Any], key: str, schema: type[SchemaT]) -> SchemaT:
    """Validate the keys of `schema` in section `key`, ignoring the section's other keys
    (another stage's, validated there)."""
    raw = params.get(key) or {}
    if not isinstance(raw, Mapping):
        raise StageError(f"params.yaml: {key} must be a mapping of keys, got {raw!r}")
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
            f"params.yaml: unknown key {key}{closest(loc, fields)}; "
            f"valid keys of {section or 'the top level'}: {', '.join(fields)}"
        )
    if first["type"] == "missing":
        return f"params.yaml: missing key {key}"
    message = first["msg"].removeprefix("Value error, ")
    return f"params.yaml: {key} = {first.get('input')!r}: {message}"
