"""Atomic part files: each finished trial becomes ``<run>/trials/part-<trial_id>.parquet``, written to
a hidden temp file in the same folder and renamed into place, so a crash never leaves half a part.

Temp files are named ``.part-<trial_id>.<random>.tmp``: Parquet dataset readers (pyarrow, pandas,
polars, duckdb globs on ``*.parquet``) skip them, so ``trials/`` always reads as one clean table.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from archbench.store.run import PART_PREFIX, part_path
from archbench.store.schema import SCHEMA, TrialRecord

TEMP_SUFFIX = ".tmp"


def write_trial(run_dir: str | Path, record: TrialRecord, *, overwrite: bool = False) -> Path:
    """Store ``record`` as ``run_dir/trials/part-<trial_id>.parquet`` atomically; returns the path.

    The part is written and fsync'ed under a hidden temp name in the same folder, then renamed
    into place, so readers see either no part or the whole one. An existing part is never replaced
    unless ``overwrite`` is True. An empty ``record.run`` is filled with the run folder's name.

    Example:
        In the example's temporary folder ``tmp``:

        >>> path = write_trial(tmp / "demo", TrialRecord(run="", trial_id="00001", status="ok", val_acc=0.91))
        >>> path.relative_to(tmp).as_posix()
        'demo/trials/part-00001.parquet'
        >>> from archbench.store import read_records
        >>> [(r.run, r.trial_id, r.val_acc) for r in read_records(tmp / "demo")]
        [('demo', '00001', 0.91)]

    Raises:
        FileExistsError: the part exists and ``overwrite`` is False (the message names the file).
        ValueError: the trial id cannot be a file name.
    """
    run_dir = Path(run_dir)
    final = part_path(run_dir, record.trial_id)
    if not record.run:
        record = replace(record, run=run_dir.resolve().name)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists (trial {record.trial_id!r} was stored before); pass overwrite=True to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([record.to_row()], schema=SCHEMA)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{PART_PREFIX}{record.trial_id}.", suffix=TEMP_SUFFIX, dir=final.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; a results table is for anyone who may read the run folder.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, final)
        else:
            _publish_new(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return final


def _publish_new(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` only if ``final`` does not exist, atomically where the OS allows.

    A hard link fails if the target exists, which closes the race between two writers of the same
    trial; filesystems without hard links fall back to a checked rename.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise FileExistsError(f"{final} already exists (another writer stored this trial first)") from None
    except OSError:
        if final.exists():
            raise FileExistsError(f"{final} already exists (another writer stored this trial first)") from None
        os.replace(tmp, final)
        return
    tmp.unlink()


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
