"""Runs the bad-input corpus (tests/fixtures/bad_inputs/cli/expected.yaml) through the real CLI,
each case in its own process, with its exit status, output and resource use (issue 12)."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "bad_inputs" / "cli"
PLACES = {
    "A": REPO / "tests" / "fixtures" / "bad_inputs" / "architectures",
    "F": CORPUS / "files",
    "S": REPO / "tests" / "fixtures" / "bad_spaces",
}
HANG_S = 180.0  # a guard against a hang, not a measurement: the work bound is the CPU time below


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str
    cpu_s: float  # user + system CPU time of the process: its work, whatever else loads the machine
    peak_mib: float  # its peak resident memory


def expand(text: str, **places: Path) -> str:
    """``text`` with ``{A}``/``{F}``/``{S}`` (the fixture folders) and the case's own places filled in."""
    for key, path in {**PLACES, **places}.items():
        text = text.replace("{" + key + "}", str(path))
    return text


# The case runs as the grandchild of a small launcher: a child's peak memory counts what it shared
# with its parent when forked (the test process holds torch), the launcher's children only theirs.
_LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen([sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    json.dump({"code": child.returncode, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}, fh)
"""


def run_case(argv: list[str], cwd: Path) -> Outcome:
    """``python bench.py ARGV`` in ``cwd``: its exit status, output, CPU time and peak memory."""
    side = cwd.parent / f".{cwd.name}"
    env = {k: v for k, v in os.environ.items() if k not in ("ARCHBENCH_SPACES_DIR", "COLUMNS")}
    env["PYTHONPATH"] = str(REPO)  # this checkout's archbench, whatever is installed
    with open(f"{side}.out", "wb") as out, open(f"{side}.err", "wb") as err:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, f"{side}.json", str(REPO / "bench.py"), *argv],
            cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    try:
        launcher.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    texts = [Path(f"{side}.{kind}").read_text(errors="replace") for kind in ("out", "err")]
    usage = json.loads(Path(f"{side}.json").read_text()) if Path(f"{side}.json").exists() else {"code": -9, "cpu_s": HANG_S, "peak_mib": 0.0}
    for kind in ("out", "err", "json"):
        Path(f"{side}.{kind}").unlink(missing_ok=True)
    return Outcome(argv, usage["code"], texts[0], texts[1], usage["cpu_s"], usage["peak_mib"])


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its size and content digest (the lock file included)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def existing_runs(root: Path) -> dict[str, Path]:
    """The run folders the cases point at: ``run`` (a stopped search), ``fid`` (a fidelity
    study's folder) and ``home`` (the folder holding the space ``run`` was started from)."""
    from search_helpers import make_stopped_run

    run = make_stopped_run(root / "search")
    fid = make_stopped_run(root / "fidelity")
    manifest = json.loads((fid / "manifest.json").read_text())
    (fid / "manifest.json").write_text(json.dumps({**manifest, "kind": "fidelity"}))
    return {"run": run, "fid": fid, "home": run.parent}


def case_folders(root: Path, index: int) -> tuple[Path, Path]:
    """The case's own folder (``{tmp}``, holding file.txt) and the empty folder it runs in."""
    tmp, cwd = root / "cases" / f"{index:03d}", root / "cwd" / f"{index:03d}"
    tmp.mkdir(parents=True)
    cwd.mkdir(parents=True)
    (tmp / "file.txt").write_text("not a folder\n")
    return tmp, cwd


def cases() -> list[tuple[str, str]]:
    import yaml

    return [tuple(case) for case in yaml.safe_load((CORPUS / "expected.yaml").read_text())]


if __name__ == "__main__":  # print each case as it runs now (expected.yaml's form), to review a change
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))  # search_helpers
    root = Path(tempfile.mkdtemp(prefix="corpus-"))
    runs = existing_runs(root)
    for i, (line, _) in enumerate(cases()):
        tmp, cwd = case_folders(root, i)
        places = {**runs, "tmp": tmp}
        got = run_case(shlex.split(expand(line, **places)), cwd)
        err = got.err.strip()
        for key, path in sorted({**PLACES, **places}.items(), key=lambda kv: -len(str(kv[1]))):
            err = err.replace(str(path), "{" + key + "}")
        print(f"- {json.dumps([line, err], ensure_ascii=False)}  # exit {got.code}, {got.cpu_s:.1f} s CPU, {got.peak_mib:.0f} MiB", flush=True)
