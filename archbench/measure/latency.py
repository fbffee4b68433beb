"""Latency: fixed threads, warm-up, repeats until the median is stable; CUDA events on GPU.

Reports median/p10/p90 with everything needed to compare two numbers (batch, dtype, device,
threads) and the load other processes put on the machine meanwhile (a contended figure is marked).
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn

from archbench.measure.load import watch_load

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Latency:
    """Per-batch forward latency in milliseconds and the conditions it was measured under."""

    median: float
    p10: float
    p90: float
    repeats: int
    batch_size: int
    device: str
    threads: int
    dtype: str
    warmup: int
    stable: bool
    # Other processes' average busy cores while timing (None: not measurable here), and whether
    # they competed with it (MachineLoad.contended): a contended figure is not a property of the model.
    other_cores: float | None = None
    contended: bool = False
    loadavg: float | None = None

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Pin intra-op threads for the measurement and restore the previous setting afterwards."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _percentile(sorted_values: list[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), without numpy.
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def measure_latency(
    model: nn.Module,
    img_size: int | tuple[int, int],
    *,
    batch_size: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    in_chans: int = 3,
    min_repeats: int = 20,
    max_repeats: int = 500,
    min_seconds: float = 1.0,
    max_seconds: float = 15.0,
    rel_tolerance: float = 0.01,
) -> Latency:
    """Time ``model`` on one random batch until the running median moves less than ``rel_tolerance``.

    Warm-up runs until 10 iterations or 0.5 s have passed (allocator, caches, cuDNN autotune).
    Timing proceeds in rounds of ``min_repeats``; it stops once at least ``min_seconds`` have been
    spent and the median of all samples differs from the previous round's by < ``rel_tolerance``,
    or at ``max_repeats`` / ``max_seconds`` (then ``stable`` is False).
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    x = torch.randn(batch_size, in_chans, h, w, device=device)
    return measure_latency_on(model, (x,), batch_size=batch_size, device=device, dtype=dtype, threads=threads, min_repeats=min_repeats,
                              max_repeats=max_repeats, min_seconds=min_seconds, max_seconds=max_seconds, rel_tolerance=rel_tolerance)


def measure_latency_on(
    model: nn.Module,
    inputs: tuple,
    *,
    batch_size: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    min_repeats: int = 20,
    max_repeats: int = 500,
    min_seconds: float = 1.0,
    max_seconds: float = 15.0,
    rel_tolerance: float = 0.01,
) -> Latency:
    """:func:`measure_latency` of ``model(*inputs)`` (inputs already on ``device``): one layer of a
    network as much as a whole one (the per-layer latency table times each layer so)."""
    torch_dtype = DTYPES[dtype]
    model = model.to(device=device).eval()
    use_cuda = device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if use_cuda else "cpu", dtype=torch_dtype, enabled=dtype != "float32")

    def run_once() -> float:
        if use_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(*inputs)
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        model(*inputs)
        return (time.perf_counter() - t0) * 1e3

    with fixed_threads(threads) as used_threads, torch.inference_mode(), autocast, watch_load() as machine:
        warmup = 0
        t_start = time.perf_counter()
        while warmup < 10 and (warmup < 2 or time.perf_counter() - t_start < 0.5):
            run_once()
            warmup += 1
        samples: list[float] = []
        previous_median = None
        stable = False
        t_start = time.perf_counter()
        while len(samples) < max_repeats:
            samples.extend(run_once() for _ in range(min_repeats))
            median = statistics.median(samples)
            elapsed = time.perf_counter() - t_start
            if previous_median is not None and elapsed >= min_seconds:
                if abs(median - previous_median) <= rel_tolerance * previous_median:
                    stable = True
                    break
            if elapsed >= max_seconds:
                break
            previous_median = median
    ordered = sorted(samples)
    return Latency(
        median=statistics.median(ordered),
        p10=_percentile(ordered, 0.10),
        p90=_percentile(ordered, 0.90),
        repeats=len(ordered),
        batch_size=batch_size,
        device=device,
        threads=used_threads,
        dtype=dtype,
        warmup=warmup,
        stable=stable,
        other_cores=machine().other_cores,
        contended=machine().contended(used_threads),
        loadavg=machine().loadavg,
    )
