"""Where a figure came from: library versions, device name, threads, host, time.

Recorded with every Profile and run manifest, so two numbers are only compared when they can be.
"""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from typing import Any

import torch

PACKAGES = ("archbench", "torch", "timm", "fvcore", "optuna", "ray", "pandas", "pyarrow")


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def provenance(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    return {
        "device_name": device_name(device),
        "device": device,
        "threads": threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "host": platform.node(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
