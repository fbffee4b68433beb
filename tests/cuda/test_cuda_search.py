"""Searches on CUDA through the CLI, read back from the Parquet records: fractional GPUs pack four
trials onto one device at once, and an out-of-memory trial is recorded `failed` while the search
completes."""
from __future__ import annotations

import pandas as pd
import pytest

from cuda_helpers import read_trials, run_cli

pytestmark = pytest.mark.cuda


def max_concurrent(frame: pd.DataFrame) -> int:
    events = sorted([(t, 1) for t in frame["started_at"]] + [(t, -1) for t in frame["finished_at"]], key=lambda e: (e[0], e[1]))
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_quarter_gpus_pack_four_trials_on_one_gpu(tmp_path):
    run_dir = tmp_path / "packed"
    # 8 trials allowed at once by --concurrency and by CPUs: only the GPU fraction caps them at 4.
    # Batch 16 over 8 epochs makes each trial last seconds, so the four windows overlap.
    done = run_cli(
        "search", "--space", "deit_ti", "--trials", "8", "--concurrency", "8", "--cpus-per-trial", "1",
        "--gpus-per-trial", "0.25", "--device", "cuda", "--epochs", "8", "--batch-size", "16",
        "--proxy-img-size", "32", "--proxy-width-mult", "0.5", "--sampler", "random",
        "--run-dir", str(run_dir), "--no-live", timeout=420,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = read_trials(run_dir)
    assert list(frame["status"]) == ["ok"] * 8, frame[["trial_id", "status", "error"]]
    assert frame["train_device"].str.startswith("cuda").all()
    assert (frame["train_peak_memory_mb"] > 0).all()
    assert max_concurrent(frame) == 4


def test_out_of_memory_trial_is_failed_and_the_search_completes(tmp_path):
    run_dir = tmp_path / "oom"
    # The loop caps a batch at the training split (1438 digits), so the absurd batch size needs a
    # large model at a large proxy resolution to overflow the device: full Swin-B at 224 px.
    done = run_cli(
        "search", "--space", "swin_b", "--trials", "1", "--device", "cuda", "--gpus-per-trial", "1",
        "--epochs", "1", "--batch-size", "65536", "--proxy-img-size", "224", "--proxy-width-mult", "1",
        "--proxy-depth-mult", "1", "--run-dir", str(run_dir), "--no-live", timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed 1" in done.stdout
    frame = read_trials(run_dir)
    assert list(frame["status"]) == ["failed"]
    assert frame["error"].iloc[0].startswith("TrainingOutOfMemory: out of memory on cuda"), frame["error"].iloc[0]
