"""Trial storage: exact round-trips, atomic part files, folder reads and bad-part reporting."""
from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archbench import zoo
from archbench.objectives import ZERO_COST_SIGNALS
from archbench.store import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    BadPart,
    CorruptPartError,
    TrialRecord,
    arch_fields,
    part_path,
    read_records,
    read_trials,
    write_trial,
)
from archbench.store import writer as writer_module


def full_record(trial_id: str = "00007", **overrides) -> TrialRecord:
    """A record with every column set, so a round-trip exercises every type."""
    start = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)
    values = dict(
        run="demo",
        trial_id=trial_id,
        status="ok",
        error=None,
        **arch_fields(zoo.get("deit_ti")),
        params=5_717_416,
        macs=1_258_219_200,
        latency_ms_median=3.141592653589793,
        latency_ms_p90=3.5,
        latency_batch_size=1,
        latency_device="cpu",
        latency_threads=4,
        latency_dtype="float32",
        val_acc=0.9387186629526463,
        val_loss=0.2718281828459045,
        best_val_acc=0.9415041782729805,
        val_acc_history=[0.5, 0.9415041782729805, 0.9387186629526463],
        epochs_run=3,
        train_seconds=12.25,
        images_per_second=1234.5678,
        train_peak_memory_mb=None,
        train_device="cpu",
        dataset="digits",
        proxy_img_size=32,
        proxy_width_mult=0.25,
        proxy_depth_mult=0.34,
        proxy_params=150_874,
        proxy_epochs=3,
        proxy_batch_size=64,
        proxy_lr=0.002,
        seed=2**40 + 3,
        started_at=start,
        finished_at=start + timedelta(seconds=14, microseconds=1),
        sampler="tpe",
        space="hybrid_vit",
        hostname="node-1",
        extra_json='{"note": "ü"}',
        synflow=1.2345e21,
        nwot=512.25,
        grad_norm=7.5,
        snip=12.125,
        synflow_seconds=0.016,
        nwot_seconds=0.022,
        grad_norm_seconds=0.041,
        snip_seconds=0.038,
        train_loss_sum=7.875,
    )
    values.update(overrides)
    return TrialRecord(**values)


def test_schema_columns_carry_units_and_version():
    assert SCHEMA_VERSION == 1
    assert SCHEMA.metadata[b"archbench.schema_version"] == b"1"
    assert list(COLUMNS) == SCHEMA.names
    for name in ("params", "macs", "latency_ms_median", "latency_ms_p90", "latency_batch_size", "latency_device",
                 "val_acc", "val_loss", "epochs_run", "train_seconds", "images_per_second", "run", "trial_id",
                 "status", "error", "arch_json", "arch_hash", "arch_summary", "proxy_img_size", "proxy_width_mult",
                 "proxy_depth_mult", "seed", "started_at", "finished_at", "sampler", "space"):
        assert name in COLUMNS
    # Every dataclass field is a column and vice versa.
    assert set(full_record().to_row()) == set(COLUMNS)
    assert {f.name for f in dataclasses.fields(TrialRecord)} == set(COLUMNS)
    # The zero-cost scores and their cost in seconds, one column each, in the signals' order.
    zero_cost = [*ZERO_COST_SIGNALS, *(f"{name}_seconds" for name in ZERO_COST_SIGNALS)]
    assert [c for c in COLUMNS if c in zero_cost] == zero_cost
    assert all(SCHEMA.field(c).type == pa.float64() and SCHEMA.field(c).nullable for c in [*zero_cost, "train_loss_sum"])


def test_record_validates_status_and_normalises_time():
    with pytest.raises(ValueError, match="status must be one of"):
        TrialRecord(run="r", trial_id="1", status="done")
    naive = TrialRecord(run="r", trial_id="1", status="ok", started_at=datetime(2025, 1, 1, 12))
    assert naive.started_at == datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
    assert TrialRecord(run="r", trial_id="1", status="failed", val_loss=float("nan")).val_loss is None


def test_write_read_round_trip_is_exact(tmp_path):
    record = full_record()
    path = write_trial(tmp_path / "demo", record)
    assert path == tmp_path / "demo" / "trials" / "part-00007.parquet"
    # Exact through Arrow ...
    assert read_records(tmp_path / "demo") == [record]
    # ... and through the DataFrame that `archbench report` reads.
    df = read_trials(tmp_path / "demo")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 1
    assert TrialRecord.from_row(df.iloc[0].to_dict()) == record
    assert df.loc[0, "macs"] == 1_258_219_200 and df.loc[0, "arch_hash"] == zoo.get("deit_ti").hash


def test_sparse_failed_record_round_trips(tmp_path):
    failed = TrialRecord(run="demo", trial_id="f1", status="failed", error="TrainingDiverged: training loss became nan",
                         params=123, seed=5)
    write_trial(tmp_path, failed)
    ok = full_record("00002")
    write_trial(tmp_path, ok)
    df = read_trials(tmp_path)
    # pandas turns the int columns with nulls into floats; from_row restores ints and Nones.
    back = {r.trial_id: r for r in (TrialRecord.from_row(row) for row in df.to_dict("records"))}
    assert back == {"f1": failed, "00002": ok}
    assert {r.trial_id: r for r in read_records(tmp_path)} == {"f1": failed, "00002": ok}


def test_existing_part_is_never_rewritten_unless_asked(tmp_path):
    write_trial(tmp_path, full_record(val_acc=0.5))
    with pytest.raises(FileExistsError, match="part-00007.parquet"):
        write_trial(tmp_path, full_record(val_acc=0.9))
    assert read_records(tmp_path)[0].val_acc == 0.5
    write_trial(tmp_path, full_record(val_acc=0.9), overwrite=True)
    assert read_records(tmp_path)[0].val_acc == 0.9
    assert [p.name for p in (tmp_path / "trials").iterdir()] == ["part-00007.parquet"]  # no temp left


def test_failed_write_leaves_no_part_and_no_temp(tmp_path, monkeypatch):
    def broken_write(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(writer_module.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_trial(tmp_path, full_record())
    assert list((tmp_path / "trials").iterdir()) == []


def test_temp_files_are_hidden_from_every_reader(tmp_path):
    write_trial(tmp_path, full_record("00001"))
    write_trial(tmp_path, full_record("00002"))
    trials = tmp_path / "trials"
    # A writer that crashed mid-write leaves a hidden temp file behind.
    (trials / ".part-00003.abc123.tmp").write_bytes(b"PAR1 not finished")
    assert sorted(read_trials(tmp_path)["trial_id"]) == ["00001", "00002"]
    # Any Parquet reader reads the folder as one table.
    df = pd.read_parquet(trials)
    assert sorted(df["trial_id"]) == ["00001", "00002"]
    assert set(COLUMNS) <= set(df.columns)
    assert pq.read_table(trials).num_rows == 2


def test_run_defaults_to_folder_name(tmp_path):
    path = write_trial(tmp_path / "my-run", full_record(run=""))
    assert read_records(path)[0].run == "my-run"


def test_bad_trial_id_is_rejected():
    with pytest.raises(ValueError, match="cannot name a file"):
        part_path("runs/x", "../escape")


def test_corrupted_part_is_reported_by_name(tmp_path):
    write_trial(tmp_path, full_record("00001"))
    good = part_path(tmp_path, "00001")
    bad = part_path(tmp_path, "00002")
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated, as after a crash of a non-atomic copy
    with pytest.raises(CorruptPartError) as info:
        read_trials(tmp_path)
    assert str(bad) in str(info.value) and "Parquet" in str(info.value)
    problems: list[BadPart] = []
    df = read_trials(tmp_path, on_bad="skip", bad_parts=problems)
    assert list(df["trial_id"]) == ["00001"]
    assert [p.path for p in problems] == [bad]
    assert str(problems[0]).startswith(f"{bad}: ") and "\n" not in str(problems[0])


def test_foreign_and_newer_parts_are_bad_parts(tmp_path):
    trials = tmp_path / "trials"
    trials.mkdir()
    pq.write_table(pa.table({"x": [1]}), trials / "part-foreign.parquet")
    newer = SCHEMA.with_metadata({b"archbench.schema_version": b"99"})
    pq.write_table(pa.Table.from_pylist([full_record("n").to_row()], schema=newer), trials / "part-n.parquet")
    problems: list[BadPart] = []
    assert read_trials(tmp_path, on_bad="skip", bad_parts=problems).empty
    reasons = {p.path.name: p.reason for p in problems}
    assert "no schema version" in reasons["part-foreign.parquet"]
    assert "v99" in reasons["part-n.parquet"]


def test_older_part_missing_columns_is_conformed(tmp_path):
    trials = tmp_path / "trials"
    trials.mkdir()
    old = pa.schema([SCHEMA.field(n) for n in ("schema_version", "run", "trial_id", "status", "val_acc")],
                    metadata=SCHEMA.metadata)
    pq.write_table(pa.Table.from_pylist([{"schema_version": 1, "run": "r", "trial_id": "a", "status": "ok", "val_acc": 0.5}], schema=old),
                   trials / "part-a.parquet")
    write_trial(tmp_path, full_record("b"))
    df = read_trials(tmp_path)
    assert list(df.columns) == list(COLUMNS)
    row = df.set_index("trial_id").loc["a"]
    assert row["val_acc"] == 0.5 and pd.isna(row["macs"])


def test_several_runs_read_as_one_table(tmp_path):
    write_trial(tmp_path / "a", full_record("1", run="a"))
    write_trial(tmp_path / "b", full_record("1", run="b"))
    df = read_trials([tmp_path / "a", tmp_path / "b" / "trials"])
    assert sorted(zip(df["run"], df["trial_id"])) == [("a", "1"), ("b", "1")]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_trials(tmp_path / "nowhere")


def test_empty_run_gives_empty_table_with_columns(tmp_path):
    os.makedirs(tmp_path / "trials")
    df = read_trials(tmp_path)
    assert df.empty and list(df.columns) == list(COLUMNS)


def test_parts_are_readable_by_others(tmp_path):
    import os
    import stat

    from archbench.store import TrialRecord, write_trial

    old = os.umask(0o022)
    try:
        path = write_trial(tmp_path, TrialRecord(run="r", trial_id="00001", status="ok"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
