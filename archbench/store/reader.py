"""Reading runs back: every ``trials/part-*.parquet`` of one or more run folders as one DataFrame,
conformed to the current schema, with unreadable parts reported by name rather than fatal.

``archbench report`` calls ``read_trials(dirs, on_bad="skip", bad_parts=problems)`` and prints
one line per entry of ``problems``; library users get a clear error by default.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from archbench.errors import UserError
from archbench.store.run import PART_GLOB, TRIALS_DIR
from archbench.store.schema import METADATA_KEY, SCHEMA, SCHEMA_VERSION, TrialRecord

PathLike = str | Path


class CorruptPartError(UserError):
    """A part file cannot be read as a trial table; the message starts with its path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class BadPart:
    """A part file that was skipped, and why (``str()`` gives the one line to print)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def part_files(run_dirs: PathLike | Iterable[PathLike]) -> list[Path]:
    """The part files of the given run folders, trials folders or part files, sorted per folder.

    Hidden temp files (``.part-*.tmp``) and anything not named ``part-*.parquet`` are ignored.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    files: list[Path] = []
    for path in _paths(run_dirs):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run folder or part file")
        if path.is_file():
            files.append(path)
            continue
        folder = path / TRIALS_DIR if (path / TRIALS_DIR).is_dir() else path
        files.extend(sorted(folder.glob(PART_GLOB)))
    return files


def read_trials(
    run_dirs: PathLike | Iterable[PathLike],
    *,
    on_bad: Literal["raise", "skip"] = "raise",
    bad_parts: list[BadPart] | None = None,
) -> pd.DataFrame:
    """All trials of one or more runs as one DataFrame with the current schema's columns.

    Each path may be a run folder (containing ``trials/``), a ``trials/`` folder or a part file.
    Parts written by an older schema version are conformed (missing columns are null); a part
    from a newer version, or one that is not readable Parquet, is a bad part.

    Example:
        A run of two trials in the example's temporary folder ``tmp``, and a part that is not Parquet:

        >>> from archbench.store import TrialRecord, write_trial
        >>> for i, acc in enumerate([0.91, 0.87]):
        ...     _ = write_trial(tmp / "demo", TrialRecord(run="demo", trial_id=f"{i:05d}", status="ok", val_acc=acc))
        >>> _ = (tmp / "demo" / "trials" / "part-00002.parquet").write_text("not Parquet")
        >>> problems: list[BadPart] = []
        >>> read_trials(tmp / "demo", on_bad="skip", bad_parts=problems)[["trial_id", "status", "val_acc"]]
          trial_id status  val_acc
        0    00000     ok     0.91
        1    00001     ok     0.87
        >>> [p.path.name for p in problems]
        ['part-00002.parquet']

    Args:
        run_dirs: one path or several.
        on_bad: "raise" a CorruptPartError at the first bad part, or "skip" it.
        bad_parts: when skipping, each bad part is appended here (path and reason).

    Raises:
        CorruptPartError: (a ValueError) a part cannot be read and ``on_bad`` is "raise".
        FileNotFoundError: a path does not exist.
    """
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")
    tables: list[pa.Table] = []
    for path in part_files(run_dirs):
        try:
            tables.append(read_part(path))
        except CorruptPartError as err:
            if on_bad == "raise":
                raise
            if bad_parts is not None:
                bad_parts.append(BadPart(err.path, err.reason))
    if not tables:
        return SCHEMA.empty_table().to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def read_records(
    run_dirs: PathLike | Iterable[PathLike],
    *,
    on_bad: Literal["raise", "skip"] = "raise",
    bad_parts: list[BadPart] | None = None,
) -> list[TrialRecord]:
    """Like :func:`read_trials`, as TrialRecords (exact ints, None for nulls, UTC datetimes)."""
    records: list[TrialRecord] = []
    for path in part_files(run_dirs):
        try:
            table = read_part(path)
        except CorruptPartError as err:
            if on_bad == "raise":
                raise
            if bad_parts is not None:
                bad_parts.append(BadPart(err.path, err.reason))
            continue
        records.extend(TrialRecord.from_row(row) for row in table.to_pylist())
    return records


def read_part(path: PathLike) -> pa.Table:
    """One part file as an Arrow table conformed to the current schema.

    Raises:
        CorruptPartError: not readable Parquet, a newer schema version, or columns of the wrong type.
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise CorruptPartError(path, f"not a readable Parquet file ({_one_line(err)})") from None
    version = _version(table.schema)
    if version is None:
        raise CorruptPartError(path, "not an archbench trial part (no schema version in its metadata)")
    if version > SCHEMA_VERSION:
        raise CorruptPartError(path, f"written with results schema v{version}; this archbench reads up to v{SCHEMA_VERSION}")
    try:
        return _conform(table)
    except (pa.ArrowException, ValueError) as err:
        raise CorruptPartError(path, f"columns do not match results schema v{SCHEMA_VERSION} ({_one_line(err)})") from None


def _conform(table: pa.Table) -> pa.Table:
    """Current columns in schema order (missing ones null), then any extra columns as they are."""
    columns, names = [], []
    for f in SCHEMA:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        elif not f.nullable:
            raise UserError(f"required column '{f.name}' is missing")
        else:
            columns.append(pa.nulls(len(table), f.type))
        names.append(f.name)
    for name in table.column_names:
        if name not in SCHEMA.names:
            columns.append(table[name])
            names.append(name)
    schema = pa.schema(
        [SCHEMA.field(n) if n in SCHEMA.names else table.schema.field(n) for n in names], metadata=SCHEMA.metadata
    )
    return pa.Table.from_arrays(columns, schema=schema)


def _version(schema: pa.Schema) -> int | None:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return None
    try:
        return int(json.loads(raw))
    except (ValueError, TypeError):
        return None


def _paths(run_dirs: PathLike | Iterable[PathLike]) -> Sequence[Path]:
    if isinstance(run_dirs, (str, Path)):
        return [Path(run_dirs)]
    return [Path(p) for p in run_dirs]


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
