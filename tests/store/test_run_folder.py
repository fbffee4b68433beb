"""The run folder: created once, recognised, locked, its manifest validated (old manifests without
a ``kind`` read as searches), unstarted runs discarded and interrupted parts set aside."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from archbench.store import TrialRecord, read_trials, write_trial
from archbench.store.run import Manifest, RunFolder

MANIFEST = Manifest(
    run_id="abc123",
    created_at="2026-01-01T00:00:00+00:00",
    command="archbench search",
    options={"trials": 2},
    space={"name": "toy"},
    objectives=[{"name": "val_acc", "direction": "max", "metric": "val_acc"}],
    seed=0,
    schema_version=1,
    versions={"python": "3.11"},
    hardware={"cpu": "x"},
    latency_isolation="lease",
)


def test_create_write_open_and_read_back(tmp_path: Path):
    folder = RunFolder.create(tmp_path / "run")
    with folder.locked():
        folder.write_manifest(MANIFEST, space_text="name: toy\n")
    assert RunFolder.is_run(folder.path) and folder.holds_run()
    again = RunFolder.open(folder.path)
    assert again.read_manifest() == MANIFEST and again.space_copy.read_text() == "name: toy\n"
    assert again.read_manifest().kind == "search" and [o.name for o in MANIFEST.objective_list] == ["val_acc"]
    with pytest.raises(ValueError, match="already holds a run"):
        RunFolder.create(folder.path)
    with pytest.raises(ValueError, match="not a run folder"):
        RunFolder.open(tmp_path / "nothing")


def test_a_locked_folder_is_refused_with_the_activity(tmp_path: Path):
    folder = RunFolder.create(tmp_path / "run")
    with folder.locked("fidelity study"):
        with pytest.raises(ValueError, match="in use by another archbench fidelity study"):
            folder.lock()
    folder.lock().release()


def test_old_manifests_are_searches_and_bad_ones_are_named(tmp_path: Path):
    folder = RunFolder.create(tmp_path / "run")
    data = MANIFEST.to_dict()
    del data["kind"]
    folder.manifest_path.write_text(json.dumps({**data, "a_newer_key": 1}))
    assert folder.read_manifest().kind == "search"
    other = replace(MANIFEST, kind="fidelity")
    folder.write_manifest(other)
    assert folder.read_manifest().kind == "fidelity"
    for broken, needle in [
        ({**data, "objectives": [{"name": "zero_cost", "direction": "max"}]}, "objective 'zero_cost'"),
        ({k: v for k, v in data.items() if k != "run_id"}, "no 'run_id'"),
        ({**data, "seed": "zero"}, "'seed' is not a int"),
    ]:
        folder.manifest_path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match="unreadable manifest") as info:
            folder.read_manifest()
        assert needle in str(info.value) and str(folder.manifest_path) in str(info.value)
    folder.manifest_path.write_text("[1, 2")
    with pytest.raises(ValueError, match="unreadable manifest"):
        folder.read_manifest_data()


def test_set_aside_and_discard(tmp_path: Path):
    folder = RunFolder.create(tmp_path / "run")
    write_trial(folder.path, TrialRecord(run="run", trial_id="00000", status="ok"))
    write_trial(folder.path, TrialRecord(run="run", trial_id="00001", status="interrupted"))
    moved = folder.set_aside("interrupted")
    assert [p.name for p in moved] == ["part-00001.parquet"] and moved[0].parent == folder.interrupted_dir
    assert folder.trial_statuses() == {"00000": "ok"} and list(read_trials(folder.path)["trial_id"]) == ["00000"]
    folder.discard_unstarted()  # a trial was recorded: nothing goes
    assert folder.part_files()
    fresh = RunFolder.create(tmp_path / "fresh")
    fresh.write_manifest(MANIFEST, space_text="x")
    fresh.discard_unstarted()
    assert not fresh.path.exists()
