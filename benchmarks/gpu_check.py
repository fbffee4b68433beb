"""One prepared check of every CUDA path of archbench, run on a GPU machine in about 8 minutes.

Steps (each under its own time limit; a step that fails or times out is recorded and the rest run):
  1. pytest -m cuda: the CUDA-marked tests (bf16 autocast, channels_last, CUDA-event latency,
     allocator peak memory, fractional --gpus-per-trial packing, OOM recorded as `failed`).
  2. profile: zoo presets on the device at two batch sizes and two dtypes through the public
     `archbench.measure.profile`; latency median/p10/p90 measured twice (spread = relative
     difference of the two medians) and the allocator's peak memory.
  3. search: the same small hybrid_vit search through the CLI with --gpus-per-trial 1 and 0.25;
     trials/min and images/s from the Parquet trial records, overlap of trials, GPU utilisation
     sampled from nvidia-smi, and any trial recorded `failed`.
  4. oom: searches provoking an out-of-memory on purpose (an absurd training batch at a large proxy
     resolution; an absurd latency batch) must record the trial `failed` with the reason and exit 0.
  5. report: gpu_check.json + gpu_check.md (a section ready for benchmarks/RESULTS.md) + gpu_check.log.

Only the CLI (subprocesses) and public APIs are used, so the check survives refactors of the package.

Run:  python benchmarks/gpu_check.py --out DIR              (CUDA machine; ~8 minutes)
      python benchmarks/gpu_check.py --dry-run --out DIR    (CPU, tiny settings: the orchestration,
                                                             parsing and report; a few minutes)
Exit status: 0 when every step passed (skipped steps count as passed in a dry run), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
SCHEMA = 1
TAG = "ARCHBENCH_GPU_CHECK_TAG"  # every process a step starts inherits it: the sweep finds leftovers by it
REQUIRED = ("torch", "timm", "fvcore", "optuna", "ray", "pandas", "pyarrow", "sklearn", "rich", "yaml", "pytest")
OOM_REASON = re.compile(r"out of memory|OutOfMemory|can't allocate memory", re.IGNORECASE)


@dataclass(frozen=True)
class OOMCase:
    """One search that must run out of memory in its only trial and record it as `failed`."""

    name: str
    why: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """What one check runs; GPU and DRY below are the two shipped settings."""

    device: str
    pytest_paths: tuple[str, ...]
    presets: tuple[str, ...]
    profile_img_size: int | None  # None: each preset's own resolution
    profile_batches: tuple[int, ...]
    profile_dtypes: tuple[str, ...]
    space: str
    trials: int
    epochs: int
    batch_size: int
    proxy_img_size: int
    proxy_width_mult: float
    proxy_depth_mult: float
    gpus_per_trial: tuple[float, ...]
    concurrency: int | None
    oom_cases: tuple[OOMCase, ...]
    skipped_oom: dict[str, str] = field(default_factory=dict)
    nvidia_smi: bool = True
    budget_s: float = 480.0
    limits_s: dict[str, float] = field(default_factory=dict)


# The largest batch accepted (65536); the loop caps a batch at the training split (1438 digits), so the memory comes
# from the resolution: Swin-B at 224 px keeps ~0.3 GiB of activations an image (~440 GiB a batch).
_TRAIN_OOM = OOMCase(
    "train",
    "absurd --batch-size (capped at the 1438-image split) at 224 px, full-width Swin-B: CUDA OOM in training",
    ("--space", "swin_b", "--batch-size", "65536", "--proxy-img-size", "224", "--proxy-width-mult", "1",
     "--proxy-depth-mult", "1", "--epochs", "1"),
)
# The largest latency batch accepted (65536) of Swin-B at 224 px: a 39 GB input and a 105 GB first
# stage, more than the GPU's 139 GiB together and far more than a CPU host's memory: refused by the
# allocator when the trial times latency.
_LATENCY_OOM = OOMCase(
    "latency",
    "largest --latency-batch-size (65536) of full Swin-B at 224 px: ~145 GB of input and first stage, refused by the allocator",
    ("--space", "swin_b", "--objectives", "macs:min,latency_ms:min", "--latency-batch-size", "65536"),
)

GPU = Settings(
    device="cuda",
    pytest_paths=("tests",),
    presets=("deit_s", "swin_t", "convnext_t", "hornet_t_gf", "focal_t"),
    profile_img_size=None,
    profile_batches=(1, 64),
    profile_dtypes=("float32", "bfloat16"),
    space="hybrid_vit",
    trials=16,
    epochs=2,
    batch_size=64,
    proxy_img_size=32,
    proxy_width_mult=0.5,
    proxy_depth_mult=0.34,
    gpus_per_trial=(1.0, 0.25),
    concurrency=None,
    oom_cases=(_TRAIN_OOM, _LATENCY_OOM),
    limits_s={"pytest": 140, "profile": 110, "search": 75, "oom": 40},
)

DRY = Settings(
    device="cpu",
    pytest_paths=("tests/cuda",),
    # One preset: on CPU each latency measurement may take its full 15 s when the host is busy.
    presets=("deit_ti",),
    profile_img_size=32,
    profile_batches=(1, 2),
    profile_dtypes=("float32", "bfloat16"),
    space="hybrid_vit",
    trials=2,
    epochs=1,
    batch_size=64,
    proxy_img_size=32,
    proxy_width_mult=0.25,
    proxy_depth_mult=0.34,
    gpus_per_trial=(1.0, 0.25),  # ignored on CPU (Ray gets gpu 0): both runs are the same work
    concurrency=2,
    oom_cases=(_LATENCY_OOM,),
    # A training batch too big for the host grows page by page into the OOM killer (on a shared
    # machine) instead of failing one allocation: only a GPU gives that case an honest answer.
    skipped_oom={"train": "CPU dry run: a training batch too big for host memory is killed by the OS, not refused"},
    nvidia_smi=False,
    budget_s=900.0,
    limits_s={"pytest": 180, "profile": 200, "search": 180, "oom": 150},
)


# ---- processes -----------------------------------------------------------------------------------
@dataclass
class Ran:
    """One finished (or killed) subprocess."""

    cmd: list[str]
    rc: int | None
    seconds: float
    stdout: str
    stderr: str
    timed_out: bool


class Runner:
    """Runs the steps' subprocesses in their own session, kills what a timed-out one left, logs all."""

    def __init__(self, log_path: Path, tag: str) -> None:
        self.log_path = log_path
        self.tag = tag
        self.env = dict(os.environ)
        # The checkout's package, whatever is installed (an editable install may point elsewhere).
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env[TAG] = tag

    def run(self, cmd: list[str], timeout: float) -> Ran:
        self.log(f"$ {' '.join(cmd)}   (limit {timeout:.0f}s)")
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid, signal.SIGINT)  # a search records interrupted trials on SIGINT
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
        self.sweep()
        ran = Ran(cmd, proc.returncode, time.monotonic() - started, out or "", err or "", timed_out)
        self.log(f"-> rc {ran.rc}{' (timed out)' if timed_out else ''} in {ran.seconds:.1f}s\n{_tail(ran.stdout, 4000)}\n{_tail(ran.stderr, 4000)}")
        return ran

    def sweep(self) -> list[int]:
        """Kill (by pid) processes left by our subprocesses: Ray's daemons and workers carry the tag."""
        left = _processes_with(f"{TAG}={self.tag}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return left

    def log(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text.rstrip() + "\n")


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _processes_with(needle_text: str) -> list[int]:
    found = []
    needle = needle_text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _tail(text: str, n: int) -> str:
    return text[-n:].strip()


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# ---- step 1: the CUDA-marked tests ---------------------------------------------------------------
def step_pytest(s: Settings, runner: Runner, work: Path, limit: float) -> dict[str, Any]:
    xml = work / "pytest-cuda.xml"
    ran = runner.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "--continue-on-collection-errors", f"--junitxml={xml}", *s.pytest_paths], limit)
    tests = _junit(xml) if xml.exists() else []
    counts = {k: sum(1 for t in tests if t["outcome"] == k) for k in ("passed", "failed", "error", "skipped")}
    # rc 5: nothing collected under the marker, which here means the CUDA tests went missing.
    ok = ran.rc == 0 and counts["failed"] == 0 and counts["error"] == 0 and bool(tests)
    return {
        "status": "timeout" if ran.timed_out else "ok" if ok else "failed",
        "seconds": round(ran.seconds, 1),
        "rc": ran.rc,
        "counts": counts,
        "tests": tests,
        "error": "" if ok else (_last_line(ran.stdout) or _last_line(ran.stderr)),
    }


def _junit(path: Path) -> list[dict[str, str]]:
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or child.text or "").strip().splitlines()[0][:300] if (child.get("message") or child.text) else ""
        rows.append({"test": f"{case.get('classname', '')}::{case.get('name', '')}", "outcome": outcome, "message": message,
                     "seconds": float(case.get("time") or 0.0)})
    return rows


# ---- step 2: profile presets (a worker process, one JSON line a measurement) --------------------
def step_profile(s: Settings, runner: Runner, work: Path, limit: float) -> dict[str, Any]:
    rows_path = work / "profile.jsonl"
    rows_path.unlink(missing_ok=True)
    job = {"device": s.device, "presets": s.presets, "img_size": s.profile_img_size, "batches": s.profile_batches,
           "dtypes": s.profile_dtypes, "out": str(rows_path), "stop_after_s": max(5.0, limit - 15.0)}
    ran = runner.run([sys.executable, str(Path(__file__).resolve()), "--profile-worker", json.dumps(job)], limit)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()] if rows_path.exists() else []
    expected = len(s.presets) * len(s.profile_batches) * len(s.profile_dtypes)
    bad = [r for r in rows if r.get("error")]
    ok = ran.rc == 0 and len(rows) == expected and not bad
    checks = _profile_checks(rows, s)
    return {
        "status": "timeout" if ran.timed_out else "ok" if ok and all(checks.values()) else "failed",
        "seconds": round(ran.seconds, 1),
        "rc": ran.rc,
        "expected_rows": expected,
        "rows": rows,
        "checks": checks,
        "error": "; ".join(f"{r['preset']} b{r['batch_size']} {r['dtype']}: {r['error']}" for r in bad)[:500]
        or ("" if ran.rc == 0 else _last_line(ran.stderr)),
    }


def _profile_checks(rows: list[dict[str, Any]], s: Settings) -> dict[str, bool]:
    good = [r for r in rows if not r.get("error")]
    small, large = min(s.profile_batches), max(s.profile_batches)
    memory_grows = all(
        a["peak_memory_mib"] < b["peak_memory_mib"]
        for a in good for b in good
        if a["preset"] == b["preset"] and a["dtype"] == b["dtype"] and a["batch_size"] == small and b["batch_size"] == large
    )
    return {
        "latency_positive": bool(good) and all(r["median_ms"] > 0 and r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] for r in good),
        "memory_positive": bool(good) and all(r["peak_memory_mib"] > 0 for r in good),
        "memory_grows_with_batch": bool(good) and memory_grows,
    }


def profile_worker(job: dict[str, Any]) -> int:
    """Runs in its own process: writes one JSON line per (preset, batch, dtype) as it goes."""
    from archbench.measure import profile

    failures = 0
    started = time.monotonic()
    with open(job["out"], "a") as out:
        for preset in job["presets"]:
            for dtype in job["dtypes"]:
                for batch in job["batches"]:
                    row: dict[str, Any] = {"preset": preset, "batch_size": batch, "dtype": dtype, "device": job["device"]}
                    if time.monotonic() - started > job["stop_after_s"]:
                        # Stop cleanly before the step's limit: the rows so far and this note survive.
                        failures += 1
                        row["error"] = "not measured: the step's time limit was near"
                        out.write(json.dumps(row) + "\n")
                        continue
                    try:
                        first = profile(preset, img_size=job["img_size"], batch_size=batch, device=job["device"], dtype=dtype)
                        second = profile(preset, img_size=job["img_size"], batch_size=batch, device=job["device"], dtype=dtype, memory=False)
                        a, b = first.latency, second.latency
                        row.update(
                            img_size=first.img_size,
                            device_name=first.provenance.get("device_name"),
                            params=first.params,
                            gmacs=round(first.macs / 1e9, 3),
                            median_ms=a.median, p10_ms=a.p10, p90_ms=a.p90, repeats=a.repeats, stable=a.stable,
                            median2_ms=b.median, repeats2=b.repeats,
                            spread=abs(a.median - b.median) / min(a.median, b.median) if min(a.median, b.median) > 0 else None,
                            images_per_s=batch / (a.median / 1e3) if a.median > 0 else None,
                            peak_memory_mib=first.memory.peak_bytes / 2**20,
                            weights_mib=first.memory.weights_bytes / 2**20,
                            memory_method=first.memory.method,
                            torch=first.provenance.get("versions", {}).get("torch"),
                        )
                    except Exception as err:  # one configuration failing (an OOM at batch 64, say) is a row
                        failures += 1
                        row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:300]
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    if job["device"].startswith("cuda"):
                        import torch

                        torch.cuda.empty_cache()  # one configuration's cached blocks do not crowd the next
    return 1 if failures else 0


# ---- step 3: the same search at two GPU fractions --------------------------------------------------
def search_cmd(s: Settings, run_dir: Path, extra: tuple[str, ...], *, gpus: float, time_budget_s: float | None) -> list[str]:
    # digits: the CUDA paths are what is checked, and the OOM case's cap is its 1438-image split.
    cmd = [sys.executable, "bench.py", "search", "--space", s.space, "--dataset", "digits", "--trials", str(s.trials), "--epochs", str(s.epochs),
           "--batch-size", str(s.batch_size), "--proxy-img-size", str(s.proxy_img_size),
           "--proxy-width-mult", str(s.proxy_width_mult), "--proxy-depth-mult", str(s.proxy_depth_mult),
           "--sampler", "random",  # the same architectures in the same order in both runs
           "--seed", "0", "--device", s.device, "--gpus-per-trial", f"{gpus:g}", "--run-dir", str(run_dir), "--no-live"]
    if s.concurrency:
        cmd += ["--concurrency", str(s.concurrency)]
    if time_budget_s is not None:
        cmd += ["--time-budget", f"{max(0.1, time_budget_s / 60):.2f}"]
    # Later flags win in argparse: a case's own settings replace the defaults above.
    return cmd + list(extra)


def step_search(s: Settings, runner: Runner, work: Path, limit: float, gpus: float) -> dict[str, Any]:
    run_dir = work / f"search-gpus-{gpus:g}"
    shutil.rmtree(run_dir, ignore_errors=True)
    # No new trial after limit - 30 s: the run then ends on its own (exit 0) with what it finished.
    sampler = GpuSampler() if s.nvidia_smi and shutil.which("nvidia-smi") else None
    if sampler:
        sampler.start()
    try:
        ran = runner.run(search_cmd(s, run_dir, (), gpus=gpus, time_budget_s=max(15.0, limit - 30.0)), limit)
    finally:
        util = sampler.stop() if sampler else None
    summary = summarize_run(run_dir, wall_s=ran.seconds)
    ok = ran.rc == 0 and summary.get("trials", 0) > 0 and not summary.get("failed")
    return {
        "status": "timeout" if ran.timed_out else "ok" if ok else "failed",
        "seconds": round(ran.seconds, 1),
        "rc": ran.rc,
        "gpus_per_trial": gpus,
        "device": s.device,
        "budget_reached": "time budget reached" in ran.stdout,
        "gpu_util": util if util is not None else ("nvidia-smi skipped" if not s.nvidia_smi else "nvidia-smi not found"),
        **summary,
        "error": "" if ok else (summary.get("read_error") or "; ".join(f"{f['trial_id']}: {f['error']}" for f in summary.get("failed", []))
                                or _last_line(ran.stderr) or _last_line(ran.stdout)),
    }


def summarize_run(run_dir: Path, *, wall_s: float) -> dict[str, Any]:
    """Throughput and overlap of one search from its Parquet trial records."""
    import pandas as pd

    trials = run_dir / "trials"
    if not trials.is_dir() or not any(trials.glob("*.parquet")):
        return {"trials": 0, "read_error": f"no trial records under {trials}"}
    try:
        frame = pd.read_parquet(trials)
    except Exception as err:  # noqa: BLE001 - recorded, not raised
        return {"trials": 0, "read_error": f"{type(err).__name__}: {err}"[:300]}
    counts = {str(k): int(v) for k, v in frame["status"].value_counts().items()}
    start = pd.to_datetime(frame["started_at"], utc=True)
    end = pd.to_datetime(frame["finished_at"], utc=True)
    span_s = (end.max() - start.min()).total_seconds() if start.notna().any() and end.notna().any() else None
    ok = frame[frame["status"] == "ok"]
    images = (ok["images_per_second"].fillna(0) * ok["train_seconds"].fillna(0)).sum()
    failed = [{"trial_id": str(r.trial_id), "error": str(r.error)[:300]} for r in frame[frame["status"] == "failed"].itertuples()]
    done = sum(counts.get(k, 0) for k in ("ok", "failed", "pruned", "rejected"))
    return {
        "trials": int(len(frame)),
        "counts": counts,
        "failed": failed,
        "record_span_s": round(span_s, 2) if span_s else None,
        "trials_per_min_wall": round(done / (wall_s / 60), 3) if wall_s > 0 else None,
        "trials_per_min_records": round(done / (span_s / 60), 3) if span_s else None,
        "images_per_s": round(float(images) / span_s, 1) if span_s and images > 0 else None,
        "images_per_s_per_trial_mean": round(float(ok["images_per_second"].mean()), 1) if len(ok) and ok["images_per_second"].notna().any() else None,
        "max_concurrent_trials": max_overlap(list(zip(start, end))),
        "train_devices": sorted({str(d) for d in frame["train_device"].dropna()}),
        "train_peak_memory_mib_max": round(float(frame["train_peak_memory_mb"].max()), 1) if frame["train_peak_memory_mb"].notna().any() else None,
    }


def max_overlap(windows: list[tuple[Any, Any]]) -> int:
    """Most windows open at one instant (a window's end before another's start at the same time)."""
    events = [(a, 1) for a, b in windows if a is not None and b is not None and a == a and b == b]
    events += [(b, -1) for a, b in windows if a is not None and b is not None and a == a and b == b]
    best = current = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        best = max(best, current)
    return best


class GpuSampler:
    """nvidia-smi's utilisation and memory of every GPU, sampled every half second in a thread."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                for line in out.strip().splitlines():
                    util, mem = (float(v) for v in line.split(","))
                    self.samples.append((util, mem))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.every_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        utils = [u for u, _ in self.samples]
        return {
            "samples": len(utils),
            "util_mean_pct": round(statistics.mean(utils), 1) if utils else None,
            "util_max_pct": max(utils) if utils else None,
            "busy_fraction": round(sum(1 for u in utils if u > 0) / len(utils), 3) if utils else None,
            "memory_used_max_mib": max((m for _, m in self.samples), default=None),
        }


# ---- step 4: out of memory on purpose ---------------------------------------------------------------
def step_oom(s: Settings, runner: Runner, work: Path, limit: float, case: OOMCase) -> dict[str, Any]:
    run_dir = work / f"oom-{case.name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    oom = Settings(**{**asdict(s), "oom_cases": (), "trials": 1, "concurrency": None})  # one trial, one GPU
    ran = runner.run(search_cmd(oom, run_dir, case.args, gpus=1.0, time_budget_s=None), limit)
    summary = summarize_run(run_dir, wall_s=ran.seconds)
    failed = summary.get("failed", [])
    reason = failed[0]["error"] if failed else ""
    checks = {
        "exit_0": ran.rc == 0,
        "trial_failed": summary.get("counts") == {"failed": 1},
        "reason_is_oom": bool(OOM_REASON.search(reason)),
    }
    return {
        "status": "timeout" if ran.timed_out else "ok" if all(checks.values()) else "failed",
        "seconds": round(ran.seconds, 1),
        "rc": ran.rc,
        "case": case.name,
        "why": case.why,
        "checks": checks,
        "reason": reason,
        "counts": summary.get("counts", {}),
        "error": "" if all(checks.values()) else (summary.get("read_error") or f"checks failed: {[k for k, v in checks.items() if not v]}; {_last_line(ran.stderr)}"),
    }


def _host_refuses_huge_allocations() -> bool:
    """Linux's heuristic (0) and strict (2) overcommit refuse one allocation beyond RAM + swap."""
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() in ("0", "2")
    except OSError:
        return False


# ---- orchestration and report ---------------------------------------------------------------------
def machine_info(s: Settings) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "host": platform.node(), "cpu_count": os.cpu_count(), "device": s.device}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        info["torch"] = None
    from importlib import metadata

    for name in ("archbench", "timm", "ray", "optuna"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    import importlib.util

    # A bare GPU image may lack some (ray, optuna, fvcore): every step then fails, and this says why.
    info["missing_packages"] = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def run_check(s: Settings, *, out: Path, work: Path, dry_run: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    log.write_text("")
    runner = Runner(log, tag=f"gc-{os.getpid()}-{time.monotonic_ns()}")
    started = time.monotonic()
    steps: dict[str, dict[str, Any]] = {}

    plan: list[tuple[str, str, Callable[[float], dict[str, Any]]]] = [("pytest", "pytest", lambda lim: step_pytest(s, runner, work, lim)),
                                                                       ("profile", "profile", lambda lim: step_profile(s, runner, work, lim))]
    for gpus in s.gpus_per_trial:
        plan.append((f"search_gpus_{gpus:g}", "search", lambda lim, g=gpus: step_search(s, runner, work, lim, g)))
    skipped = dict(s.skipped_oom)
    for case in s.oom_cases:
        if case.name == "latency" and not s.device.startswith("cuda") and not _host_refuses_huge_allocations():
            skipped[case.name] = "this host overcommits memory (vm.overcommit_memory=1): a 6 TB allocation would not be refused"
            continue
        plan.append((f"oom_{case.name}", "oom", lambda lim, c=case: step_oom(s, runner, work, lim, c)))

    for name, kind, fn in plan:
        left = s.budget_s - (time.monotonic() - started)
        limit = min(s.limits_s.get(kind, 120.0), left)
        if limit < 15:
            steps[name] = {"status": "skipped", "seconds": 0.0, "error": f"no time left in the {s.budget_s:.0f}s budget"}
            continue
        runner.log(f"\n=== {name} (limit {limit:.0f}s) ===")
        began = time.monotonic()
        try:
            steps[name] = fn(limit)
        except Exception as err:  # a broken step is a result; the others still run
            steps[name] = {"status": "failed", "seconds": round(time.monotonic() - began, 1), "error": f"{type(err).__name__}: {err}"[:500]}
        if steps[name]["status"] == "timeout":
            steps[name]["error"] = f"ran past its {limit:.0f}s limit (killed); partial results kept"
        runner.log(f"=== {name}: {steps[name]['status']} {steps[name].get('error', '')}")
    for case_name, why in skipped.items():
        steps[f"oom_{case_name}"] = {"status": "skipped", "seconds": 0.0, "case": case_name, "error": why}

    ratio = _search_ratio(steps, s)
    result = {
        "schema": SCHEMA,
        "dry_run": dry_run,
        "command": " ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]),
        "machine": machine_info(s),
        "settings": {k: v for k, v in asdict(s).items() if k not in ("oom_cases",)} | {"oom_cases": [asdict(c) for c in s.oom_cases]},
        "steps": steps,
        "search_ratio": ratio,
        "elapsed_s": round(time.monotonic() - started, 1),
        "passed": all(v["status"] in ("ok", "skipped") for v in steps.values()),
    }
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    return result


def _search_ratio(steps: dict[str, dict[str, Any]], s: Settings) -> dict[str, Any] | None:
    if len(s.gpus_per_trial) < 2:
        return None
    base, packed = (steps.get(f"search_gpus_{g:g}", {}) for g in s.gpus_per_trial[:2])

    def ratio(key: str) -> float | None:
        a, b = base.get(key), packed.get(key)
        return round(b / a, 3) if a and b else None

    return {
        "baseline_gpus_per_trial": s.gpus_per_trial[0],
        "packed_gpus_per_trial": s.gpus_per_trial[1],
        "trials_per_min_wall": ratio("trials_per_min_wall"),
        "trials_per_min_records": ratio("trials_per_min_records"),
        "images_per_s": ratio("images_per_s"),
    }


def _fmt(value: Any, spec: str = "") -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value).replace("|", "\\|")


def markdown(r: dict[str, Any]) -> str:
    """A section for benchmarks/RESULTS.md: machine, command, then one table a step."""
    m, st = r["machine"], r["steps"]
    gpus = ", ".join(m.get("gpus") or []) or "no GPU"
    lines = [
        f"## GPU check{' (dry run on CPU)' if r['dry_run'] else ''}",
        "",
        "`benchmarks/gpu_check.py`: the CUDA-marked tests, zoo presets profiled on the device (latency "
        "measured twice: spread = relative difference of the medians; allocator peak memory), the same small "
        "search with two GPU fractions, and out-of-memory provoked on purpose inside a search.",
        "",
        f"Machine: {gpus}; {m.get('cpu_count')} CPUs; torch {m.get('torch')} (CUDA {m.get('cuda')}), timm {m.get('timm')}, "
        f"ray {m.get('ray')}, optuna {m.get('optuna')}, Python {m.get('python')}; commit {m.get('git_commit')}; "
        f"{r['elapsed_s']:.0f} s in all.",
        "",
        f"`{r['command']}`",
        "",
        *([f"Missing packages: {', '.join(m['missing_packages'])}.", ""] if m.get("missing_packages") else []),
        "| step | status | seconds | note |",
        "|---|---|---:|---|",
    ]
    for name, step in st.items():
        lines.append(f"| {name} | {step['status']} | {_fmt(step.get('seconds'), '.0f')} | {_fmt(step.get('error'))} |")

    tests = st.get("pytest", {}).get("tests", [])
    if tests:
        c = st["pytest"]["counts"]
        lines += ["", f"CUDA tests (`pytest -m cuda`): {c['passed']} passed, {c['failed']} failed, {c['error']} errors, {c['skipped']} skipped.", "",
                  "| test | outcome | seconds | message |", "|---|---|---:|---|"]
        lines += [f"| {t['test']} | {t['outcome']} | {t['seconds']:.1f} | {_fmt(t['message'])} |" for t in tests]

    rows = st.get("profile", {}).get("rows", [])
    if rows:
        lines += ["", "| model | res | batch | dtype | median ms | p10 ms | p90 ms | median 2 ms | spread | img/s | peak MiB | stable |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in rows:
            if row.get("error"):
                lines.append(f"| {row['preset']} | – | {row['batch_size']} | {row['dtype']} | {_fmt(row['error'])} | | | | | | | |")
                continue
            spread = f"{row['spread']:.1%}" if row.get("spread") is not None else "–"
            lines.append(
                f"| {row['preset']} | {row['img_size']} | {row['batch_size']} | {row['dtype']} | {row['median_ms']:.3f} | {row['p10_ms']:.3f} | "
                f"{row['p90_ms']:.3f} | {row['median2_ms']:.3f} | {spread} | {_fmt(row.get('images_per_s'), '.0f')} | "
                f"{row['peak_memory_mib']:.1f} | {'yes' if row['stable'] else 'no'} |"
            )
        device_names = sorted({str(row.get("device_name")) for row in rows if row.get("device_name")})
        methods = {row.get("memory_method") for row in rows if row.get("memory_method")}
        how = ("the CUDA allocator's peak during one inference forward minus what was allocated before it (weights, input)"
               if methods == {"cuda_allocator_peak_minus_weights"} else f"{', '.join(sorted(methods)) or '–'} (CPU: no allocator statistics)")
        lines += ["", f"Device: {', '.join(device_names) or '–'}. Peak memory: {how}; measured in float32 whatever the dtype "
                  "column says (`profile` applies `--dtype` to latency only)."]

    searches = [(k, v) for k, v in st.items() if k.startswith("search_gpus_") and "trials" in v]
    if searches:
        lines += ["", "| GPUs/trial | trials (ok/failed/rejected) | wall s | trials/min (wall) | trials/min (records) | images/s | "
                  "max concurrent | GPU util mean/max % | failed |",
                  "|---:|---|---:|---:|---:|---:|---:|---|---|"]
        for _, v in searches:
            c = v.get("counts", {})
            util = v.get("gpu_util")
            util_text = f"{_fmt(util.get('util_mean_pct'))} / {_fmt(util.get('util_max_pct'))}" if isinstance(util, dict) else _fmt(util)
            failed = "; ".join(f"{f['trial_id']}: {f['error']}" for f in v.get("failed", [])) or "none"
            lines.append(
                f"| {v['gpus_per_trial']:g} | {c.get('ok', 0)}/{c.get('failed', 0)}/{c.get('rejected', 0)} | {v['seconds']:.0f} | "
                f"{_fmt(v.get('trials_per_min_wall'))} | {_fmt(v.get('trials_per_min_records'))} | {_fmt(v.get('images_per_s'))} | "
                f"{_fmt(v.get('max_concurrent_trials'))} | {util_text} | {_fmt(failed)} |"
            )
        ratio = r.get("search_ratio") or {}
        if ratio:
            lines += ["", f"Packing ratio ({ratio['packed_gpus_per_trial']:g} vs {ratio['baseline_gpus_per_trial']:g} GPU a trial): "
                      f"trials/min ×{_fmt(ratio['trials_per_min_wall'])} (wall), ×{_fmt(ratio['trials_per_min_records'])} (records), "
                      f"images/s ×{_fmt(ratio['images_per_s'])}."]

    ooms = [v for k, v in st.items() if k.startswith("oom_")]
    if ooms:
        lines += ["", "| OOM case | status | exit | recorded | reason |", "|---|---|---:|---|---|"]
        for v in ooms:
            counts = ", ".join(f"{k} {n}" for k, n in sorted(v.get("counts", {}).items())) or "–"
            lines.append(f"| {v.get('case', '?')} | {v['status']} | {_fmt(v.get('rc'))} | {counts} | {_fmt(v.get('reason') or v.get('error'))} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or None, help="folder for gpu_check.json/.md/.log (default $OUT, else ./gpu_check)")
    parser.add_argument("--work-dir", default=None, help="folder for run folders and logs (default: a temporary folder, removed unless --keep)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny settings: exercises orchestration, parsing and the report")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all steps (default 480 on GPU, 900 dry run)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder (run folders, junit XML)")
    parser.add_argument("--profile-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile_worker:
        return profile_worker(json.loads(args.profile_worker))

    settings = DRY if args.dry_run else GPU
    if args.budget:
        settings = Settings(**{**asdict(settings), "oom_cases": settings.oom_cases, "budget_s": args.budget})
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device here; run with --dry-run for the CPU rehearsal", file=sys.stderr)
            return 2
    out = Path(args.out or "gpu_check").resolve()
    temp = None if args.work_dir else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work = Path(args.work_dir).resolve() if args.work_dir else temp
    try:
        result = run_check(settings, out=out, work=work, dry_run=args.dry_run)
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
    for name, step in result["steps"].items():
        print(f"{name:<20} {step['status']:<8} {step.get('seconds', 0):>6.0f}s  {step.get('error', '')}"[:240])
    print(f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}, {out / 'gpu_check.log'} ({result['elapsed_s']:.0f}s)")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
