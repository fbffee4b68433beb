"""Helpers of the CUDA tests: a tiny pyramid spec, a CLI runner killed whole on timeout, and the
run's trial records read as any Parquet reader would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tiny_pyramid():
    """~0.1M parameters: a 4×4 patch stem (a 2-D conv, so channels_last applies), ConvNeXt blocks
    (depthwise conv + Linear MLP) and a Linear head; 16 px become a 1×1 map."""
    from archbench import ArchSpec

    def stage(dim: int, kernel: int, down: bool) -> dict:
        return {"depth": 1, "dim": dim, "block": {"type": "convnext", "params": {"kernel": kernel}},
                "downsample": {"type": "conv"} if down else None}

    return ArchSpec.from_dict({
        "name": "tiny",
        "layout": "pyramid",
        "input": {"img_size": 16, "num_classes": 10},
        "stem": {"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        "stages": [stage(32, 3, False), stage(64, 1, True), stage(64, 1, True)],
        "head": {"type": "linear"},
    })


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python bench.py ARGS` from the checkout (its own session; killed whole on timeout)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.Popen([sys.executable, "bench.py", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"bench.py {' '.join(args)} ran past {timeout}s\n{out[-2000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def read_trials(run_dir: Path):
    """The run's trial records, read as any Parquet reader would (the documented contract)."""
    import pandas as pd

    return pd.read_parquet(run_dir / "trials")
