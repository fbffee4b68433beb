"""Measurement on CUDA through the public `profile`: latency timed with CUDA events (agreeing with
a synchronised wall clock), the device recorded by name, and the allocator's peak memory."""
from __future__ import annotations

import json
import statistics
import time

import pytest
import torch

import archbench
from archbench.measure import profile

from cuda_helpers import run_cli

pytestmark = pytest.mark.cuda


def test_cuda_event_latency_records_the_gpu():
    p = profile("deit_ti", batch_size=1, device="cuda", dtype="bfloat16", memory=False)
    lat = p.latency
    assert lat is not None and lat.median > 0 and lat.p10 <= lat.median <= lat.p90
    assert lat.device.startswith("cuda") and lat.dtype == "bfloat16" and lat.batch_size == 1 and lat.repeats >= 20
    assert p.provenance["device_name"] == torch.cuda.get_device_name(0)
    # The CLI reports the same, as JSON.
    done = run_cli("profile", "deit_ti", "--device", "cuda", "--dtype", "bfloat16", "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["latency_ms"]["median"] > 0 and data["latency_ms"]["device"].startswith("cuda")
    assert data["provenance"]["device_name"] == torch.cuda.get_device_name(0)


def test_cuda_latency_agrees_with_a_synchronised_clock():
    # A GPU-bound forward (DeiT-S, batch 64, float32 ≈ 0.3 TMACs): timing without synchronising
    # would return the launch time only, a small fraction of this.
    measured = profile("deit_s", batch_size=64, device="cuda", memory=False).latency.median
    model = archbench.build(archbench.load_arch("deit_s")).cuda().eval()
    x = torch.randn(64, 3, 224, 224, device="cuda")
    walls = []
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        for _ in range(20):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            torch.cuda.synchronize()
            walls.append((time.perf_counter() - t0) * 1e3)
    wall = statistics.median(walls)
    assert 0.6 < measured / wall < 1.4, (measured, wall)


def test_allocator_peak_memory_grows_with_batch():
    one = profile("deit_s", batch_size=1, device="cuda", latency=False).memory
    many = profile("deit_s", batch_size=64, device="cuda", latency=False).memory
    for mem in (one, many):
        assert mem.method == "cuda_allocator_peak_minus_weights" and mem.device.startswith("cuda")
        assert mem.peak_bytes > 0
    assert many.peak_bytes > one.peak_bytes, (one.peak_bytes, many.peak_bytes)
    assert one.weights_bytes == many.weights_bytes > 80e6  # 22M float32 parameters
