"""The trial table: one row a finished trial, as a versioned Arrow/Parquet schema, and TrialRecord,
the dataclass a runner fills in and the writer stores (units live in the column names).

docs/results-schema.md documents every column; bump SCHEMA_VERSION when a column is renamed,
removed or changes meaning or unit (adding a nullable column keeps the version).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

import pyarrow as pa

from archbench.objectives import ZERO_COST_COLUMNS

if TYPE_CHECKING:
    from archbench.spec import ArchSpec

SCHEMA_VERSION = 1
# Parquet key-value metadata every part carries, so a reader can tell versions apart without rows.
METADATA_KEY = b"archbench.schema_version"

STATUSES = ("ok", "failed", "pruned", "rejected", "interrupted")

_TS = pa.timestamp("us", tz="UTC")

# (column, arrow type, nullable). Order is the on-disk order.
_COLUMNS: tuple[tuple[str, pa.DataType, bool], ...] = (
    ("schema_version", pa.int16(), False),
    ("run", pa.string(), False),
    ("trial_id", pa.string(), False),
    ("status", pa.string(), False),
    ("error", pa.string(), True),
    # the architecture
    ("arch_name", pa.string(), True),
    ("arch_hash", pa.string(), True),
    ("arch_summary", pa.string(), True),
    ("arch_json", pa.string(), True),
    # efficiency of the full architecture at img_size
    ("img_size", pa.int32(), True),
    ("params", pa.int64(), True),
    ("macs", pa.int64(), True),
    ("latency_ms_median", pa.float64(), True),
    ("latency_ms_p90", pa.float64(), True),
    ("latency_batch_size", pa.int32(), True),
    ("latency_device", pa.string(), True),
    ("latency_threads", pa.int32(), True),
    ("latency_dtype", pa.string(), True),
    ("latency_other_cores", pa.float64(), True),
    ("latency_contended", pa.bool_(), True),
    # proxy training
    ("val_acc", pa.float64(), True),
    ("val_loss", pa.float64(), True),
    ("best_val_acc", pa.float64(), True),
    ("val_acc_history", pa.list_(pa.float64()), True),
    ("epochs_run", pa.int32(), True),
    ("train_seconds", pa.float64(), True),
    ("images_per_second", pa.float64(), True),
    ("train_peak_memory_mb", pa.float64(), True),
    ("train_device", pa.string(), True),
    ("dataset", pa.string(), True),
    ("proxy_img_size", pa.int32(), True),
    ("proxy_width_mult", pa.float64(), True),
    ("proxy_depth_mult", pa.float64(), True),
    ("proxy_params", pa.int64(), True),
    ("proxy_epochs", pa.int32(), True),
    ("proxy_batch_size", pa.int32(), True),
    ("proxy_lr", pa.float64(), True),
    ("proxy_train_images", pa.int32(), True),
    # provenance
    ("seed", pa.int64(), True),
    ("started_at", _TS, True),
    ("finished_at", _TS, True),
    ("sampler", pa.string(), True),
    ("space", pa.string(), True),
    ("fidelity", pa.string(), True),
    ("hostname", pa.string(), True),
    ("extra_json", pa.string(), True),
    # added in version 1 (nullable, at the end): training-free scores of the proxy at initialisation
    # (archbench.train.zero_cost), the seconds each took, and the sum of the training losses
    *((name, pa.float64(), True) for name in ZERO_COST_COLUMNS),
    ("train_loss_sum", pa.float64(), True),
    # the DINO k-NN probe of the proxy's features after training and (optionally) at initialisation,
    # and the label-mixing rule training used (archbench.train.knn, archbench.train.mixing)
    ("val_knn_acc", pa.float64(), True),
    ("val_knn_acc_init", pa.float64(), True),
    ("mix_rule", pa.string(), True),
    # the whole model's audited count beside `params`/`macs` (the per-layer cache's sum): equal
    # unless a layer's cost depends on something its cache key misses
    ("params_full", pa.int64(), True),
    ("macs_full", pa.int64(), True),
    # the per-layer latency table's prediction (batch 1, this machine), when it is an objective
    ("latency_pred_ms", pa.float64(), True),
)

SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, dtype, nullable=nullable) for name, dtype, nullable in _COLUMNS],
    metadata={METADATA_KEY: str(SCHEMA_VERSION).encode()},
)
COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in _COLUMNS)

_INT_COLUMNS = frozenset(n for n, t, _ in _COLUMNS if pa.types.is_integer(t))
_FLOAT_COLUMNS = frozenset(n for n, t, _ in _COLUMNS if pa.types.is_floating(t))


@dataclass
class TrialRecord:
    """One trial's outcome: what was built, what it measured, how proxy training went.

    Only ``run``, ``trial_id`` and ``status`` are required; a failed or rejected trial leaves the
    measurements it never reached as None. Timestamps are timezone-aware UTC datetimes (naive
    ones are taken as UTC). See docs/results-schema.md for units and meanings.

    Example:
        >>> rec = TrialRecord(run="demo", trial_id="00003", status="ok", params=5_717_416, macs=1_258_219_200)
        >>> TrialRecord.from_row(rec.to_row()) == rec
        True
    """

    run: str
    trial_id: str
    status: str
    error: str | None = None
    arch_name: str | None = None
    arch_hash: str | None = None
    arch_summary: str | None = None
    arch_json: str | None = None
    img_size: int | None = None
    params: int | None = None
    macs: int | None = None
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    latency_batch_size: int | None = None
    latency_device: str | None = None
    latency_threads: int | None = None
    latency_dtype: str | None = None
    latency_other_cores: float | None = None
    latency_contended: bool | None = None
    val_acc: float | None = None
    val_loss: float | None = None
    best_val_acc: float | None = None
    val_acc_history: list[float] | None = None
    epochs_run: int | None = None
    train_seconds: float | None = None
    images_per_second: float | None = None
    train_peak_memory_mb: float | None = None
    train_device: str | None = None
    dataset: str | None = None
    proxy_img_size: int | None = None
    proxy_width_mult: float | None = None
    proxy_depth_mult: float | None = None
    proxy_params: int | None = None
    proxy_epochs: int | None = None
    proxy_batch_size: int | None = None
    proxy_lr: float | None = None
    proxy_train_images: int | None = None
    seed: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    sampler: str | None = None
    space: str | None = None
    fidelity: str | None = None
    hostname: str | None = None
    extra_json: str | None = None
    synflow: float | None = None
    nwot: float | None = None
    grad_norm: float | None = None
    snip: float | None = None
    synflow_seconds: float | None = None
    nwot_seconds: float | None = None
    grad_norm_seconds: float | None = None
    snip_seconds: float | None = None
    train_loss_sum: float | None = None
    val_knn_acc: float | None = None
    val_knn_acc_init: float | None = None
    mix_rule: str | None = None
    params_full: int | None = None
    macs_full: int | None = None
    latency_pred_ms: float | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial {self.trial_id!r}: status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if not isinstance(self.trial_id, str) or not self.trial_id:
            raise ValueError(f"trial_id must be a non-empty string, got {self.trial_id!r}")
        for name in ("started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=timezone.utc))
            elif value is not None:
                setattr(self, name, value.astimezone(timezone.utc))
        if self.val_acc_history is not None:
            self.val_acc_history = [float(v) for v in self.val_acc_history]
        for name in _FLOAT_COLUMNS:
            # NaN and null are one thing here: pandas cannot tell them apart on the way back.
            value = getattr(self, name)
            if isinstance(value, float) and math.isnan(value):
                setattr(self, name, None)

    def to_row(self) -> dict[str, Any]:
        """A dict keyed by column, in schema order, ready for ``pa.Table.from_pylist``."""
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrialRecord:
        """Rebuild a record from a row of ``read_trials``' DataFrame or an Arrow ``to_pylist`` row.

        pandas' NaN/NaT for missing values become None, float-typed integer columns (pandas turns
        an int column with nulls into float) become ints, Timestamps become datetimes and arrays
        lists. Columns this version does not know (from a newer minor writer) are ignored.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in row.items():
            if name not in known:
                continue
            values[name] = _plain(name, value)
        return cls(**values)


def _plain(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "val_acc_history":
        if isinstance(value, float) and math.isnan(value):
            return None
        return [float(v) for v in value]
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp (NaT is caught below)
        return None if value != value else value.to_pydatetime()
    if isinstance(value, float) and math.isnan(value):
        return None  # pandas' NaN standing for a null (of any type)
    if name in _FLOAT_COLUMNS:
        return float(value)
    if name in _INT_COLUMNS:
        return int(value)
    if type(value).__module__ == "numpy":
        return value.item()
    return value


def arch_fields(arch: ArchSpec) -> dict[str, Any]:
    """The ``arch_*`` and ``img_size`` fields of a TrialRecord for ``arch``.

    Example:
        >>> from archbench import zoo
        >>> record = TrialRecord(run="r", trial_id="1", status="ok", **arch_fields(zoo.get("deit_ti")))
        >>> record.arch_name, record.arch_summary, record.img_size
        ('deit_ti', 'patchify | mhsa×12', 224)
    """
    return {
        "arch_name": arch.name,
        "arch_hash": arch.hash,
        "arch_summary": arch.summary(),
        "arch_json": arch.to_json(),
        "img_size": arch.input.img_size,
    }
