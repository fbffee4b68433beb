"""Resume after the driver dies: `kill -9` of the driver's process group (Ray's daemons with it)
and Ctrl-C (SIGINT, a clean stop recording running trials as interrupted). `--resume` then
completes exactly the requested trials, every trial_id once, retrying the cut-off architectures."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from search_helpers import TINY_SPACE, wait_for_exit

from archbench.search.sampling import DRAWN_ATTR

pytestmark = pytest.mark.slow  # drivers as subprocesses, each starting its own Ray: ~40-70 s a test

# Sequential trials of a few seconds each, so a signal lands while one is in flight.
SLOW_TINY = (
    "--space", str(TINY_SPACE), "--dataset", "digits", "--trials", "3", "--epochs", "6", "--batch-size", "16", "--seed", "0",
    "--concurrency", "1", "--proxy-width-mult", "1", "--proxy-depth-mult", "1", "--no-live",
)


def sampled_running_trials(run: Path) -> list[int]:
    """Numbers of the trials the study holds as RUNNING whose architecture was fully drawn and is
    feasible (the define-by-run function sets ``DRAWN_ATTR`` last): the trials a resume must try
    again. A trial is RUNNING from its ask on, while its parameters are still drawn one by one."""
    db = run / "optuna.db"
    if not db.exists():
        return []
    query = (
        "SELECT t.number FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
        "WHERE t.state = 'RUNNING' AND a.key = ? AND a.value_json = ? ORDER BY t.number"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return [n for (n,) in con.execute(query, (DRAWN_ATTR, json.dumps("")))]  # drawn and feasible
    except sqlite3.Error:
        return []  # the driver is creating the tables, or was stopped inside a write


def parts(run: Path) -> set[str]:
    return {p.name for p in (run / "trials").glob("part-*.parquet")}


def freeze_mid_run(proc, run: Path, timeout: float = 300) -> int:
    """Stop the driver (SIGSTOP) once a part is written and another, fully drawn trial is in flight;
    returns that trial's number. Only the driver writes the study and the parts, so what is read
    while it is stopped is exactly what a kill leaves behind: no race with the trial finishing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver ended early: {proc.communicate()}"
        if parts(run) and sampled_running_trials(run):
            os.kill(proc.pid, signal.SIGSTOP)
            frozen = sampled_running_trials(run)  # read again: the state can no longer move
            if parts(run) and frozen:
                return frozen[0]
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.3)
    raise AssertionError("no trial was in flight in time")


def wait_in_flight(proc, run: Path, timeout: float = 300) -> int:
    """Block until a part is written and another, fully drawn trial is in flight (waiting for a
    worker or training: a Ctrl-C records either as interrupted); its number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver ended early: {proc.communicate()}"
        running = sampled_running_trials(run)
        if running and parts(run):
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
    cut_off = freeze_mid_run(first.proc, run)
    before = parts(run)
    first.kill_group(signal.SIGKILL)  # SIGKILL ends the stopped driver too
    first.proc.wait(timeout=30)
    # Fate sharing, not a timing bound: a loaded machine may take a while to reap Ray's workers.
    assert wait_for_exit(first.tag, timeout=90) == [], "Ray processes outlived the killed driver"

    code, out, err = driver("search", "--resume", "--run-dir", str(run), "--no-live").run(timeout=300)
    assert code == 0, err
    df = assert_complete_run(run, cut_off)
    assert before <= {f"part-{t}.parquet" for t in df["trial_id"]}  # nothing finished was redone
    assert "Traceback" not in err


def test_ctrl_c_records_interrupted_trials_and_resume_continues(driver, tmp_path):
    run = tmp_path / "run"
    first = driver("search", *SLOW_TINY, "--run-dir", str(run)).start()
    cut_off = wait_in_flight(first.proc, run)  # six epochs of seconds each are still to come
    first.kill_group(signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    code, out, err = first.wait(timeout=120)
    assert code == 130, (out, err)
    assert "interrupted: continue with" in out and f"--resume --run-dir {run}" in out
    assert "Traceback" not in err and "Traceback" not in out
    assert wait_for_exit(first.tag, timeout=90) == [], "Ray processes outlived the stopped driver"
    parts = pd.read_parquet(run / "trials")
    interrupted = parts[parts["status"] == "interrupted"]
    assert list(interrupted["trial_id"]) == [f"{cut_off:05d}"]
    assert interrupted["error"].str.contains("interrupted").all()

    code, out, err = driver("search", "--resume", "--run-dir", str(run), "--no-live").run(timeout=300)
    assert code == 0, err
    assert_complete_run(run, cut_off)
    # The interrupted record is kept, outside the table of completed trials.
    assert (run / "interrupted" / f"part-{cut_off:05d}.parquet").is_file()
