"""Run folders for report tests, written directly (manifest + Parquet parts): no search, no Ray."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from archbench.store import TrialRecord, write_trial

SUMMARY = "conv | gnconv×2 · gnconv×3 · focal×9 · refiner×2"


def write_run(
    root: Path,
    name: str,
    trials: Sequence[dict[str, Any]],
    *,
    sampler: str = "nsga2",
    objectives: Sequence[tuple[str, str]] = (("val_acc", "max"), ("macs", "min")),
    space: str = "toy",
    manifest: bool = True,
) -> Path:
    """A run folder like `archbench search` leaves: manifest.json and one part per trial.

    Each trial is a dict of TrialRecord fields (status defaults to ok); ids are 00000, 00001, …
    """
    run = root / name
    run.mkdir(parents=True)
    if manifest:
        data = {
            "run_id": name,
            "objectives": [{"name": n, "direction": d, "metric": "latency_ms_median" if n == "latency_ms" else n} for n, d in objectives],
            "options": {"sampler": sampler, "trials": len(trials)},
            "space": {"name": space, "target": {"img_size": 64, "num_classes": 10}},
        }
        (run / "manifest.json").write_text(json.dumps(data))
    for i, fields in enumerate(trials):
        record = {"status": "ok", "arch_summary": SUMMARY, "img_size": 64, "dataset": "digits", "sampler": sampler, "space": space}
        record.update(fields)
        write_trial(run, TrialRecord(run=name, trial_id=f"{i:05d}", **record))
    return run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, trials: Sequence[dict[str, Any]], **kwargs: Any) -> Path:
        return write_run(tmp_path / "runs", name, trials, **kwargs)

    return make
