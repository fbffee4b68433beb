"""Run storage: the run folder and its manifest, the versioned trial schema, the atomic part-file
writer and readers of run folders.

``runs/<run>/trials/part-<trial_id>.parquet`` holds one TrialRecord each; any Parquet reader reads
``trials/`` as one table. Columns and units: docs/results-schema.md.
"""
from __future__ import annotations

from archbench.store.reader import BadPart, CorruptPartError, part_files, read_part, read_records, read_trials
from archbench.store.run import Manifest, RunDirLock, RunFolder, part_path, trials_dir
from archbench.store.schema import COLUMNS, SCHEMA, SCHEMA_VERSION, STATUSES, TrialRecord, arch_fields
from archbench.store.writer import write_trial

__all__ = [
    "BadPart",
    "COLUMNS",
    "Manifest",
    "CorruptPartError",
    "RunDirLock",
    "RunFolder",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "TrialRecord",
    "arch_fields",
    "part_files",
    "part_path",
    "read_part",
    "read_records",
    "read_trials",
    "trials_dir",
    "write_trial",
]
