"""Helpers of the search tests: drivers run as subprocesses (own process group, own Ray temp
folder) that are killed and swept by process id, and in-process searches on a shared Ray.

Nothing here stops a Ray instance it did not start: `ray stop` kills every Ray process on the
machine, so clusters started by a test are stopped through their process group and their unique
temp folder instead.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_SPACE = Path(__file__).resolve().parent / "search" / "spaces" / "tiny_search.yaml"


def short_tempdir(prefix: str) -> Path:
    # Ray puts Unix sockets under its temp folder: the path must stay well under 107 bytes.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


TAG = "ARCHBENCH_TEST_TAG"


def new_tag(prefix: str) -> str:
    """A value for $ARCHBENCH_TEST_TAG: every process a driver starts (Ray's daemons, and its
    workers, which run in sessions of their own under a ``ray::`` title) inherits it."""
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment contains ``text`` (a tag or a
    temp folder only our Ray uses)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in seen and not _is_zombie(entry):
            found.append(int(entry.name))
    return found


def _is_zombie(entry: Path) -> bool:
    try:
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def sweep(text: str, timeout: float = 10.0) -> list[int]:
    """Kill (by pid) what is left of a Ray we started under the temp folder ``text``; returns the
    pids that were still alive, so a test can assert nothing leaked."""
    leftover = processes_mentioning(text)
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes_mentioning(text):
        time.sleep(0.2)
    return leftover


def wait_for_exit(text: str, timeout: float = 20.0) -> list[int]:
    """Wait for processes under ``text`` to exit on their own (fate sharing); returns those that
    did not (after killing them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and processes_mentioning(text):
        time.sleep(0.5)
    return sweep(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """`python bench.py search …` in its own process group, with a Ray temp folder of its own."""

    def __init__(self, args: list[str], *, ray_tmp: Path, tag: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.ray_tmp = ray_tmp
        self.tag = f"{TAG}={tag}"  # as it appears in /proc/PID/environ
        inherited = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env = {**inherited, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(ray_tmp), TAG: tag, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Driver:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench.py"), *self.args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: kill -9 takes Ray's daemons along
        )
        return self

    def wait(self, timeout: float) -> tuple[int, str, str]:
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            out, err = self.proc.communicate()
            raise AssertionError(f"driver did not finish in {timeout}s:\n{out[-3000:]}\n{err[-3000:]}") from None
        return self.proc.returncode, out, err

    def run(self, timeout: float = 240) -> tuple[int, str, str]:
        return self.start().wait(timeout)

    def kill_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def search(options, **kwargs):
    """run_search as the CLI calls it, on the shared Ray."""
    from archbench.search.runner import run_search

    kwargs.setdefault("live", False)
    return run_search(options, command=["pytest", options.space], **kwargs)


def read_run(run_dir: str | Path):
    import pandas as pd

    return pd.read_parquet(Path(run_dir) / "trials").sort_values("trial_id").reset_index(drop=True)


def make_stopped_run(root: Path) -> Path:
    """``root/run``: a search of three trials as its driver left it (no Ray): manifest, space copy,
    a study of three told trials and a part for each. The space is a copy of the tiny test space
    (``root/space.yaml``), so a test may edit it."""
    import shutil

    import optuna

    from archbench.search.options import SearchOptions
    from archbench.search.prepare import prepare_run
    from archbench.search.sampling import STUDY_NAME
    from archbench.store import TrialRecord, write_trial

    root.mkdir(parents=True, exist_ok=True)
    space = root / "space.yaml"
    shutil.copy(TINY_SPACE, space)
    options = SearchOptions(space=str(space), trials=3, run_dir=str(root / "run"))
    _, run, _ = prepare_run(options, ["bench.py", "search"], {"space", "trials", "run_dir"})
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{run / 'optuna.db'}", directions=["maximize", "minimize"])
        for _ in range(3):
            study.tell(study.ask(), [0.5, 1e6])
    finally:
        optuna.logging.set_verbosity(verbosity)
    for number in range(3):
        write_trial(run, TrialRecord(run="", trial_id=f"{number:05d}", status="ok"))
    return run
