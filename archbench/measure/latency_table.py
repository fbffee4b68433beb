"""Predicted latency from a per-layer latency table (ProxylessNAS / Once-for-All's lookup tables;
nn-Meter predicts per kernel): each distinct layer timed once at batch 1 on this machine, summed,
then corrected by a fit against whole networks measured the same way (what does not compose:
call overhead between layers, caches warm in isolation and cold in a network).

The table lives beside the per-layer cost cache (same keys, same file), one per machine, device and
thread count; the calibration too. Time it on an idle machine: layers timed under load are slow.
"""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from archbench.measure.layer_cost import TimingSetup, layer_sums, store

if TYPE_CHECKING:
    from collections.abc import Sequence

    from archbench.spec import ArchSpec

__all__ = ["Calibration", "LatencyPrediction", "calibrate", "predict_latency", "timing_setup"]

_CALIBRATION_KEY = "network-fit"


@dataclass(frozen=True)
class Calibration:
    """``measured ≈ scale · Σ layers + offset_ms``, fitted on ``networks`` measured networks
    (``calibrate`` fits the median ratio, offset 0; the offset is kept for stored fits)."""

    scale: float = 1.0
    offset_ms: float = 0.0
    networks: int = 0

    def apply(self, layer_sum_ms: float) -> float:
        return self.scale * layer_sum_ms + self.offset_ms


@dataclass(frozen=True)
class LatencyPrediction:
    """``latency_pred_ms`` (calibrated when a calibration exists) and the plain sum it came from."""

    latency_pred_ms: float
    layer_sum_ms: float
    calibrated: bool
    timed: int  # layers timed by this call (new to the table)


def timing_setup(device: str = "cpu", threads: int = 1) -> TimingSetup:
    """The table for this machine (CPU model and host name), ``device`` and ``threads``."""
    from archbench.measure.provenance import cpu_name

    where = device
    if device.startswith("cuda"):
        import torch

        where = f"cuda:{torch.cuda.get_device_name(torch.device(device))}"  # one table per GPU model
    machine = hashlib.sha256(f"{cpu_name()}|{platform.node()}".encode()).hexdigest()[:12]
    return TimingSetup(device=device, threads=threads, machine=f"{machine}:{where}")


def predict_latency(arch: ArchSpec, *, device: str = "cpu", threads: int = 1) -> LatencyPrediction:
    """Predicted batch-1 latency of ``arch`` at its input size; layers not in the table are timed now.

    Example:
        >>> p = predict_latency(archbench.zoo.get("deit_ti").with_input(img_size=64))
        >>> p.latency_pred_ms > 0
        True
    """
    setup = timing_setup(device, threads)
    sums = layer_sums(arch, timing=setup)
    assert sums.latency_ms is not None
    calibration = load_calibration(setup)
    return LatencyPrediction(calibration.apply(sums.latency_ms), sums.latency_ms, calibration.networks > 0, sums.timed)


def load_calibration(setup: TimingSetup) -> Calibration:
    found = store().get(f"calibration:{setup.counter}", _CALIBRATION_KEY)
    return Calibration(**found) if isinstance(found, dict) and set(found) == {"scale", "offset_ms", "networks"} else Calibration()


def calibrate(archs: Sequence[ArchSpec], *, device: str = "cpu", threads: int = 1) -> tuple[Calibration, list[tuple[float, float]]]:
    """Measure each of ``archs`` whole (as trial latency is measured) and fit the correction of the
    layer sums to it; stored for this machine, device and threads. Returns the fit and the
    (layer sum, measured) pairs it was fitted on."""
    from archbench.builder import build
    from archbench.measure import measure_latency

    setup = timing_setup(device, threads)
    pairs = []
    for arch in archs:
        sums = layer_sums(arch, timing=setup)
        assert sums.latency_ms is not None
        measured = measure_latency(build(arch), arch.input.img_size, device=device, threads=threads).median
        pairs.append((sums.latency_ms, float(measured)))
    x, y = np.array(pairs).T
    # One scale, the median ratio: a line with an offset through a handful of whole-network
    # measurements follows their noise (0.82 x sum + 42 ms on one idle run of a 2-core VM, where the
    # same network measured twice minutes apart agreed within 10% only 37-40% of the time:
    # benchmarks/RESULTS.md). A ratio is what does not compose at every size (tiny networks run
    # ~1.4x their layers' sum), and a median ignores the network measured during a hiccup.
    fit = Calibration(float(np.median(y / x)), 0.0, len(pairs))
    store().put(f"calibration:{setup.counter}", _CALIBRATION_KEY, {"scale": fit.scale, "offset_ms": fit.offset_ms, "networks": fit.networks})
    return fit, pairs
