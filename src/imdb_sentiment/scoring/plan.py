"""What `score` reads and writes, without Ray: the input files, the work units they are cut
into, the plan file that lets a killed run resume, and the per-unit read and write.

A unit is a range of rows of one input file, cut at row-group boundaries where the file
has them (a row group larger than `rows_per_file` is split into equal slices). Unit `i`
becomes the output file `part-{i:06d}.parquet`: the plan alone decides every name, so a
rerun knows which units are done and writes only the others. A part file is trusted only
after it is read back whole (page checksums verified) and its metadata names this plan,
this unit's input file and rows, and the number of rows it holds; one that fails (cut
short, replaced, another run's) is reported and written again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imdb_sentiment.core.atomic import atomic_path, remove_abandoned
from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.files import open_regular, read_regular

log = logging.getLogger("imdb_sentiment.score")

TEXT_COLUMN = "text"
OUTPUT_COLUMNS = ("label", "score")
# Input columns named like an output column keep their values under this prefix.
RENAMED_PREFIX = "input_"
PLAN_FILE = "_score_plan.json"
PART_NAME = "part-{:06d}.parquet"
PLAN_VERSION = 1
READ_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Unit:
    """Rows [start, stop) of the input file `path`, scored into part-{index}.parquet."""

    index: int
    path: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return PART_NAME.format(self.index)


def list_input_files(spec: str) -> list[Path]:
    """The Parquet files of INPUT: a file, a folder (every *.parquet below it, hidden and
    `_` names skipped as Parquet readers skip them) or a glob; sorted, so the plan is stable."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        found = [
            p
            for p in path.rglob("*.parquet")
            if p.is_file()
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        ]
    elif glob.has_magic(spec):
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
    else:
        raise StageError(f"{spec}: no such file or folder")
    if not found:
        raise StageError(f"{spec}: no Parquet files there")
    return sorted(p.resolve() for p in found)


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path).remove_metadata()
    except (OSError, pa.ArrowException) as exc:
        raise StageError(f"{path}: not a readable Parquet file ({exc})") from exc


def id_columns(schema: pa.Schema) -> list[str]:
    """Every input column but the text, in the input's order: they are kept in the output."""
    return [name for name in schema.names if name != TEXT_COLUMN]


def output_name(column: str) -> str:
    return RENAMED_PREFIX + column if column in OUTPUT_COLUMNS else column


def check_schemas(files: list[Path]) -> pa.Schema:
    """The schema every input file shares; one line naming the first file that differs or
    lacks a string `text` column."""
    first = _schema(files[0])
    for path in files:
        schema = first if path == files[0] else _schema(path)
        if TEXT_COLUMN not in schema.names:
            raise StageError(f"{path}: no column {TEXT_COLUMN!r}; it has {schema.names}")
        text_type = schema.field(TEXT_COLUMN).type
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
            raise StageError(f"{path}: column {TEXT_COLUMN!r} holds {text_type}, not strings")
        if not schema.equals(first):
            raise StageError(
                f"{path}: its columns differ from {files[0]}'s ({schema} against {first})"
            )
    names = [output_name(column) for column in id_columns(first)]
    clash = sorted({name for name in names if names.count(name) > 1})
    if clash:
        raise StageError(f"{files[0]}: columns {clash} would clash in the output")
    return first


def _file_units(path: Path, row_groups: list[int], rows_per_file: int) -> Iterator[tuple]:
    """(start, stop) row ranges of one file: whole row groups up to `rows_per_file` rows,
    a larger row group in equal slices."""
    start = offset = 0
    for group_rows in row_groups:
        end = offset + group_rows
        if group_rows > rows_per_file:
            if offset > start:
                yield start, offset
            slices = math.ceil(group_rows / rows_per_file)
            bounds = [offset + group_rows * k // slices for k in range(slices + 1)]
            yield from zip(bounds[:-1], bounds[1:], strict=True)
            start = end
        elif end - start > rows_per_file:
            yield start, offset
            start = offset
        offset = end
    if offset > start:
        yield start, offset


def make_plan(files: list[Path], rows_per_file: int, identity: dict[str, Any]) -> dict[str, Any]:
    """The plan: the run's settings (`identity`), each input file's size and row-group
    layout, and the units in order."""
    described, units = [], []
    for path in files:
        meta = pq.read_metadata(path)
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        described.append({"path": str(path), "bytes": path.stat().st_size, "row_groups": groups})
        for start, stop in _file_units(path, groups, rows_per_file):
            units.append([str(path), start, stop])
    return {
        "version": PLAN_VERSION,
        **identity,
        "rows_per_file": rows_per_file,
        "files": described,
        "units": units,
    }


def plan_units(plan: dict[str, Any]) -> list[Unit]:
    return [Unit(index, *spec) for index, spec in enumerate(plan["units"])]


def hash_folder(folder: Path) -> str:
    """sha256 of a model folder's files (names and bytes): a retrained model is another run."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def plan_digest(plan: dict[str, Any]) -> str:
    """sha256 of the plan: every part file names the plan it was written for."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def part_problem(path: Path, unit: Unit, digest: str) -> str | None:
    """Why the part file of `unit` cannot be trusted, or None when it holds what it claims:
    readable to the end with every page checksum right, written for this plan, this input
    file and these rows, holding the number of rows its metadata says (at most the unit's)."""
    try:
        with open_regular(path) as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            metadata = {
                key.decode(errors="replace"): value.decode(errors="replace")
                for key, value in (parquet.schema_arrow.metadata or {}).items()
            }
            table = parquet.read()
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable Parquet file ({one_line(exc, 120)})"
    claims = {
        "imdb_score.plan": digest,
        "imdb_score.source": unit.path,
        "imdb_score.rows": f"{unit.start}:{unit.stop}",
        "imdb_score.written": str(table.num_rows),
    }
    wrong = sorted(key for key, value in claims.items() if metadata.get(key) != value)
    if wrong:
        return f"its metadata ({', '.join(wrong)}) is not this run's unit {unit.index}"
    if table.num_rows > unit.rows or not {*OUTPUT_COLUMNS} <= set(table.column_names):
        return f"{table.num_rows} rows of columns {table.column_names}: not this unit's scores"
    return None


def verified_units(out_dir: Path, plan: dict[str, Any]) -> set[int]:
    """The units whose part file is there and trusted; each other part file found is
    reported, and its unit scored again (the rewrite replaces it)."""
    digest, done = plan_digest(plan), set()
    for unit in plan_units(plan):
        path = out_dir / unit.file_name
        if not (path.exists() or path.is_symlink()):
            continue
        problem = part_problem(path, unit, digest)
        if problem is None:
            done.add(unit.index)
        else:
            log.warning("%s: %s; scoring unit %d again", path, problem, unit.index)
    return done


def open_output(out_dir: Path, plan: dict[str, Any]) -> set[int]:
    """Make `out_dir` hold `plan`; return the indices of the units already written there
    (and verified: :func:`part_problem`).

    A new or empty folder gets the plan. A folder holding the same plan is resumed. Any
    other folder stops the run with one line: mixing two runs' scores would go unnoticed.
    """
    plan_path = out_dir / PLAN_FILE
    if plan_path.exists():
        try:
            stored = json.loads(read_regular(plan_path))
        except (OSError, ValueError) as exc:
            raise StageError(
                f"{plan_path}: unreadable ({one_line(exc, 200)}); remove {out_dir}"
            ) from exc
        if stored != plan:
            changed = sorted(k for k in {*stored, *plan} if stored.get(k) != plan.get(k))
            raise StageError(
                f"{out_dir} holds the scores of another run ({', '.join(changed)} differ): "
                "choose another --output or remove it"
            )
        return verified_units(out_dir, plan)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise StageError(f"{out_dir}: not empty and not a score output (no {PLAN_FILE})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plan_path) as tmp:
        tmp.write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")
    return set()


def read_unit(unit: Unit) -> pa.Table:
    """The unit's rows, every column, streamed from the row groups that hold them."""
    parquet = pq.ParquetFile(unit.path)
    meta = parquet.metadata
    groups, offset, first_offset = [], 0, None
    for i in range(meta.num_row_groups):
        end = offset + meta.row_group(i).num_rows
        if end > unit.start and offset < unit.stop:
            groups.append(i)
            first_offset = offset if first_offset is None else first_offset
        offset = end
    batches, position = [], first_offset or 0
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=groups):
        lo, hi = max(unit.start - position, 0), min(unit.stop - position, batch.num_rows)
        if hi > lo:
            batches.append(batch.slice(lo, hi - lo))
        position += batch.num_rows
        if position >= unit.stop:
            break
    table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
    if table.num_rows != unit.rows:
        raise StageError(f"{unit.path}: read {table.num_rows} rows of {unit.start}:{unit.stop}")
    return table.replace_schema_metadata(None)


def write_unit(out_dir: Path, unit: Unit, scored: pa.Table, digest: str) -> None:
    """Write one unit's scores atomically (temporary sibling, then one rename), with page
    checksums and the metadata that :func:`part_problem` checks on a resume."""
    metadata = {
        "imdb_score.plan": digest,
        "imdb_score.source": unit.path,
        "imdb_score.rows": f"{unit.start}:{unit.stop}",
        "imdb_score.written": str(scored.num_rows),
    }
    table = scored.replace_schema_metadata(metadata)
    with atomic_path(out_dir / unit.file_name) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


def remove_leftovers(out_dir: Path) -> None:
    """Remove the temporary part files that killed writers left (call when no writer runs)."""
    remove_abandoned(out_dir, "part-*.parquet", any_writer=True)
