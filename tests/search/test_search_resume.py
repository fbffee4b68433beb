"""Resume after the driver dies: `kill -9` of the driver's process group (Ray's daemons with it)
and Ctrl-C (SIGINT, a clean stop recording running trials as interrupted). `--resume` then
completes exactly the requested trials, every trial_id once, retrying the cut-off architectures."""
from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from search_helpers import TINY_SPACE, wait_for_exit

pytestmark = pytest.mark.slow  # drivers as subprocesses, each starting its own Ray: ~40-70 s a test

# Sequential trials of a few seconds each, so a signal lands while one is in flight.
SLOW_TINY = (
    "--space", str(TINY_SPACE), "--trials", "3", "--epochs", "6", "--batch-size", "16", "--seed", "0",
    "--concurrency", "1", "--proxy-width-mult", "1", "--proxy-depth-mult", "1", "--no-live",
)


def running_trial_numbers(run: Path) -> list[int]:
    """Trials in flight: RUNNING in the study and done sampling (DefineByRun sets ``violation`` last).

    A trial is RUNNING from its ask on, while its parameters are still being drawn one by one; a
    kill in those ~0.2 s leaves it with part of its parameters (or none), which is not the case
    under test here."""
    db = run / "optuna.db"
    if not db.exists():
        return []
    query = (
        "SELECT t.number FROM trials t WHERE t.state = 'RUNNING' AND EXISTS "
        "(SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'violation')"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return [n for (n,) in con.execute(query)]
    except sqlite3.Error:
        return []  # the driver is creating the tables


def wait_mid_run(proc, run: Path, timeout: float = 180) -> int:
    """Block until at least one part is written and another trial is in flight; its number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver ended early: {proc.communicate()}"
        running = running_trial_numbers(run)
        if list((run / "trials").glob("part-*.parquet")) and running:
            return running[0]
        time.sleep(0.3)
    raise AssertionError("no trial was in flight in time")


def study(run: Path) -> optuna.Study:
    return optuna.load_study(study_name="archbench", storage=f"sqlite:///{run / 'optuna.db'}")


def assert_complete_run(run: Path, cut_off: int) -> pd.DataFrame:
    df = pd.read_parquet(run / "trials")
    assert len(df) == 3 and df["trial_id"].is_unique, df[["trial_id", "status"]]
    assert (df["status"] == "ok").all()
    assert f"{cut_off:05d}" not in set(df["trial_id"])  # its Optuna number is spent; it was retried
    trials = {t.number: t for t in study(run).get_trials(deepcopy=False)}
    assert trials[cut_off].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == cut_off]
    assert retry.params == trials[cut_off].params
    assert retry.user_attrs["arch_hash"] in set(df["arch_hash"])  # the cut-off architecture was trained
    assert len(json.loads((run / "manifest.json").read_text())["resumed"]) == 1
    return df


def test_resume_after_kill_9_completes_exactly_the_requested_trials(driver, tmp_path):
    run = tmp_path / "run"
    first = driver("search", *SLOW_TINY, "--run-dir", str(run)).start()
    cut_off = wait_mid_run(first.proc, run)
    before = {p.name for p in (run / "trials").glob("part-*.parquet")}
    first.kill_group(signal.SIGKILL)
    first.proc.wait(timeout=30)
    assert wait_for_exit(first.tag) == [], "Ray processes outlived the killed driver"

    code, out, err = driver("search", "--resume", "--run-dir", str(run), "--no-live").run(timeout=300)
    assert code == 0, err
    df = assert_complete_run(run, cut_off)
    assert before <= {f"part-{t}.parquet" for t in df["trial_id"]}  # nothing finished was redone
    assert "Traceback" not in err


def test_ctrl_c_records_interrupted_trials_and_resume_continues(driver, tmp_path):
    run = tmp_path / "run"
    first = driver("search", *SLOW_TINY, "--run-dir", str(run)).start()
    cut_off = wait_mid_run(first.proc, run)
    time.sleep(2.0)  # let the trial's worker start it, so the driver tracks it as live
    first.kill_group(signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    code, out, err = first.wait(timeout=120)
    assert code == 130, (out, err)
    assert "interrupted: continue with" in out and f"--resume --run-dir {run}" in out
    assert "Traceback" not in err and "Traceback" not in out
    assert wait_for_exit(first.tag) == [], "Ray processes outlived the stopped driver"
    parts = pd.read_parquet(run / "trials")
    interrupted = parts[parts["status"] == "interrupted"]
    assert list(interrupted["trial_id"]) == [f"{cut_off:05d}"]
    assert interrupted["error"].str.contains("interrupted").all()

    code, out, err = driver("search", "--resume", "--run-dir", str(run), "--no-live").run(timeout=300)
    assert code == 0, err
    assert_complete_run(run, cut_off)
    # The interrupted record is kept, outside the table of completed trials.
    assert (run / "interrupted" / f"part-{cut_off:05d}.parquet").is_file()
