"""`--resume` of a damaged run folder: a missing, truncated, foreign or stale optuna.db and a deleted
space copy are refused in one line before anything in the folder changes (no Ray: the folders are
written as a stopped driver leaves them, without running a search)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from search_helpers import make_stopped_run

from archbench.cli import main
from archbench.search.options import SearchOptions
from archbench.search.prepare import prepare_run
from archbench.search.sampling import STUDY_NAME, check_study
from archbench.store import TrialRecord, write_trial
from archbench.store.run import LOCK_FILE, RunFolder

RECOVER = "the study cannot be continued; start a new run with another --run-dir"


@pytest.fixture
def stopped_run(tmp_path: Path) -> Path:
    return make_stopped_run(tmp_path)


def snapshot(run: Path) -> dict[str, bytes]:
    # The lock file is the lock's own: taking it (to refuse a live run) rewrites the pid in it.
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


def resume(capsys, run: Path) -> str:
    """`archbench search --resume` of ``run``: it must fail in one line, exit 2; that line."""
    code = main(["search", "--resume", "--run-dir", str(run), "--no-live"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("archbench: error: "), err
    # Ray was never joined for it: the session's ray.log and Tune's folder are written on joining
    # (whether this process already runs a Ray for other tests does not tell).
    assert not (run / "ray").exists() and not (run / "ray.log").exists()
    return lines[0]


def test_a_missing_study_with_parts_is_refused(capsys, stopped_run):
    db = stopped_run / "optuna.db"
    db.unlink()
    before = snapshot(stopped_run)
    line = resume(capsys, stopped_run)
    assert line == (
        f"archbench: error: {db}: missing, but the run has 3 trial parts: {RECOVER} "
        f"(archbench report {stopped_run} still reads this run's 3 trial parts), or put back a copy of optuna.db taken when the run stopped"
    )
    assert snapshot(stopped_run) == before  # the manifest's `resumed` list included


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda db: db.write_bytes(db.read_bytes()[:5000]), "damaged or not a SQLite database (database disk image is malformed)"),
        (lambda db: db.write_text("not a database\n" * 300), "damaged or not a SQLite database (file is not a database)"),
    ],
    ids=["truncated", "not-sqlite"],
)
def test_a_damaged_study_is_refused(capsys, stopped_run, damage, problem):
    db = stopped_run / "optuna.db"
    damage(db)
    before = snapshot(stopped_run)
    line = resume(capsys, stopped_run)
    assert line.startswith(f"archbench: error: {db}: {problem}: {RECOVER}"), line
    assert snapshot(stopped_run) == before


def test_a_study_older_than_the_parts_is_refused(capsys, stopped_run):
    """A copy of optuna.db from earlier in the run: new trials would take the ids of recorded ones."""
    write_trial(stopped_run, TrialRecord(run="", trial_id="00007", status="ok"))
    before = snapshot(stopped_run)
    line = resume(capsys, stopped_run)
    assert f"optuna.db: holds 3 trials of study 'archbench', but the run has a part of trial 00007: {RECOVER}" in line
    assert snapshot(stopped_run) == before


def test_a_run_stopped_before_its_study_may_start_it(tmp_path, stopped_run):
    """No parts yet: a missing or empty optuna.db is no damage (the resumed run creates the study)."""
    shutil.rmtree(stopped_run / "trials")
    (stopped_run / "optuna.db").unlink()
    check_study(RunFolder(stopped_run))
    (stopped_run / "optuna.db").write_bytes(b"")
    check_study(RunFolder(stopped_run))


def test_a_study_killed_inside_a_write_is_rolled_back_not_refused(stopped_run):
    """kill -9 while the driver writes leaves a hot journal; SQLite rolls it back: no damage."""
    writer = (
        "import sqlite3, time\n"
        "con = sqlite3.connect('optuna.db', isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=1')\n"  # dirty pages spill into the file before the commit
        "con.execute('BEGIN IMMEDIATE')\n"
        "con.execute('CREATE TABLE pad (x BLOB)')\n"
        "con.executemany('INSERT INTO pad VALUES (randomblob(4000))', [()] * 100)\n"
        "print('inside', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=stopped_run, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inside"
    proc.kill()
    proc.wait()
    assert (stopped_run / "optuna.db-journal").stat().st_size > 0
    check_study(RunFolder(stopped_run))
    assert len(optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{stopped_run / 'optuna.db'}").trials) == 3


def test_a_deleted_space_copy_is_written_again_from_the_unchanged_space(stopped_run):
    copy = stopped_run / "space.yaml"
    text = copy.read_text()
    copy.unlink()
    again = SearchOptions(run_dir=str(stopped_run), resume=True)
    _, _, manifest = prepare_run(again, ["bench.py", "search", "--resume"], {"run_dir", "resume"})
    assert copy.read_text() == text and len(manifest.resumed) == 1


def test_a_deleted_space_copy_of_a_changed_space_is_refused(capsys, tmp_path, stopped_run):
    copy = stopped_run / "space.yaml"
    copy.unlink()
    source = tmp_path / "space.yaml"
    source.write_text(source.read_text().replace("{dim: {choice: [32, 64]}}", "{dim: {choice: [32, 128]}}"))
    before = snapshot(stopped_run)
    line = resume(capsys, stopped_run)
    assert line.startswith(f"archbench: error: {copy}: missing, and the space it copied ({source}) has changed since the run started (hash ")
    assert line.endswith("): put the run's space.yaml back to resume it")
    assert snapshot(stopped_run) == before
