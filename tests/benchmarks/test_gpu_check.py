"""benchmarks/gpu_check.py cannot rot: its CPU dry run writes the JSON and Markdown a GPU run
writes (every step, every table), and its parsing helpers read what the product writes."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


gpu_check = _load()


def test_max_overlap_counts_windows_open_at_once():
    assert gpu_check.max_overlap([]) == 0
    assert gpu_check.max_overlap([(0, 10), (1, 9), (2, 8), (3, 7), (10, 12)]) == 4
    # One window ending as the next starts is not an overlap (a reused actor's next trial).
    assert gpu_check.max_overlap([(0, 5), (5, 10), (10, 15)]) == 1


def test_junit_outcomes(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.cuda.a" name="t1" time="1.5"/>'
        '<testcase classname="tests.cuda.a" name="t2" time="0.1"><failure message="assert 1 == 2">tb</failure></testcase>'
        '<testcase classname="tests.cuda.b" name="t3" time="0"><skipped message="needs a CUDA device"/></testcase>'
        "</testsuite></testsuites>"
    )
    rows = gpu_check._junit(xml)
    assert [(r["test"], r["outcome"]) for r in rows] == [("tests.cuda.a::t1", "passed"), ("tests.cuda.a::t2", "failed"), ("tests.cuda.b::t3", "skipped")]
    assert rows[1]["message"] == "assert 1 == 2" and rows[0]["seconds"] == 1.5


def test_the_gpu_settings_fit_eight_minutes():
    s = gpu_check.GPU
    steps = {"pytest": 1, "profile": 1, "search": len(s.gpus_per_trial), "oom": len(s.oom_cases)}
    assert sum(s.limits_s[k] * n for k, n in steps.items()) <= s.budget_s <= 480
    assert len(s.presets) == 5 and s.profile_batches == (1, 64) and s.profile_dtypes == ("float32", "bfloat16")
    assert (s.trials, s.epochs, s.proxy_width_mult, s.gpus_per_trial) == (16, 2, 0.5, (1.0, 0.25))
    assert {c.name for c in s.oom_cases} == {"train", "latency"}


@pytest.mark.slow
def test_dry_run_writes_the_whole_report(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--work-dir", str(work)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    result = json.loads((out / "gpu_check.json").read_text())
    steps = result["steps"]
    assert done.returncode == 0, (done.stdout[-3000:], {k: v.get("error") for k, v in steps.items()})
    assert set(result) >= {"schema", "dry_run", "command", "machine", "settings", "steps", "search_ratio", "elapsed_s", "passed"}
    assert result["dry_run"] is True and result["passed"] is True and result["machine"]["device"] == "cpu"
    assert list(steps) == ["pytest", "profile", "search_gpus_1", "search_gpus_0.25", "oom_latency", "oom_train"]

    # 1. The CUDA tests were collected and skipped cleanly, with the reason.
    tests = steps["pytest"]["tests"]
    assert len(tests) >= 7 and steps["pytest"]["counts"]["skipped"] == len(tests)
    assert {t["message"] for t in tests} == {"needs a CUDA device"}

    # 2. One row per (preset, batch, dtype), each with two latency medians and the memory.
    s = gpu_check.DRY
    rows = steps["profile"]["rows"]
    assert steps["profile"]["status"] == "ok" and len(rows) == len(s.presets) * len(s.profile_batches) * len(s.profile_dtypes)
    for row in rows:
        assert row["median_ms"] > 0 and row["median2_ms"] > 0 and row["spread"] >= 0 and row["peak_memory_mib"] > 0
        assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["img_size"] == 32
    assert {(r["batch_size"], r["dtype"]) for r in rows} == {(b, d) for b in s.profile_batches for d in s.profile_dtypes}
    assert all(steps["profile"]["checks"].values())

    # 3. Both searches ran through the CLI; throughput and overlap come from the Parquet records.
    for name in ("search_gpus_1", "search_gpus_0.25"):
        search = steps[name]
        assert search["status"] == "ok" and search["rc"] == 0 and search["trials"] == s.trials
        assert search["counts"].get("ok", 0) + search["counts"].get("rejected", 0) == s.trials and search["failed"] == []
        assert search["trials_per_min_wall"] > 0 and search["trials_per_min_records"] > 0
        assert 1 <= search["max_concurrent_trials"] <= s.concurrency and search["gpu_util"] == "nvidia-smi skipped"
    assert set(result["search_ratio"]) >= {"trials_per_min_wall", "trials_per_min_records", "images_per_s"}
    assert result["search_ratio"]["trials_per_min_wall"] > 0

    # 4. The refused allocation is a failed trial with its reason, and the search still exits 0.
    oom = steps["oom_latency"]
    assert oom["status"] == "ok" and oom["checks"] == {"exit_0": True, "trial_failed": True, "reason_is_oom": True}
    assert "can't allocate memory" in oom["reason"]
    assert steps["oom_train"]["status"] == "skipped" and steps["oom_train"]["error"]

    # 5. The Markdown section: the step table, then one table a step with one line a row.
    md = (out / "gpu_check.md").read_text()
    assert md.startswith("## GPU check (dry run on CPU)")
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| step ")]
    presets = tuple(f"| {name} | 32 |" for name in s.presets)
    assert sum(line.startswith(presets) for line in table_rows) == len(rows)
    assert sum(line.startswith("| tests.cuda.") for line in table_rows) == len(tests)
    assert sum(line.startswith(("| 1 | ", "| 0.25 | ")) for line in table_rows) == 2
    assert any(line.startswith("| latency | ok | 0 | failed 1 |") for line in table_rows)
    assert "Packing ratio (0.25 vs 1 GPU a trial)" in md
    for name in steps:
        assert f"| {name} | {steps[name]['status']} |" in md
    assert (out / "gpu_check.log").stat().st_size > 0
