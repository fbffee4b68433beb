"""Latency and memory: the conditions are recorded and the statistics are consistent."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.measure import measure_latency, measure_memory, profile


def test_latency_records_conditions_and_orders_percentiles():
    model = archbench.build("deit_ti", img_size=32, num_classes=10)
    lat = measure_latency(model, 32, batch_size=2, threads=1, min_seconds=0.1, max_seconds=2.0)
    assert lat.threads == 1 and lat.batch_size == 2 and lat.device == "cpu" and lat.dtype == "float32"
    assert lat.p10 <= lat.median <= lat.p90 and lat.repeats >= 20 and lat.warmup >= 2
    assert lat.median > 0


def test_cpu_memory_is_activation_bytes_and_grows_with_batch():
    model = archbench.build("deit_ti", img_size=32, num_classes=10)
    one = measure_memory(model, 32, batch_size=1)
    four = measure_memory(model, 32, batch_size=4)
    assert one.method == "cpu_sum_of_leaf_module_outputs"
    assert four.peak_bytes == pytest.approx(4 * one.peak_bytes, rel=0.01)
    assert one.weights_bytes == 4 * sum(p.numel() for p in model.parameters()) + 4 * sum(b.numel() for b in model.buffers())


def test_memory_is_measured_under_the_requested_dtype():
    """Memory is reported beside latency: both under the same autocast dtype (linear outputs in
    bf16 take half the bytes of fp32 ones)."""
    model = archbench.build("deit_ti", img_size=32, num_classes=10)
    fp32 = measure_memory(model, 32, batch_size=2)
    bf16 = measure_memory(model, 32, batch_size=2, dtype="bfloat16")
    assert (fp32.dtype, bf16.dtype) == ("float32", "bfloat16")
    assert 0.4 * fp32.peak_bytes < bf16.peak_bytes < 0.8 * fp32.peak_bytes


def test_profile_of_a_timm_model_and_provenance():
    p = profile("timm:resnet18", latency=False, memory=False)
    assert p.params == 11_689_512 and p.macs == pytest.approx(1.82e9, rel=0.01)
    assert torch.__version__.startswith(p.provenance["versions"]["torch"])
    assert p.provenance["device_name"] and p.flops_counter == "fvcore+archbench-handles"


@pytest.mark.cuda
def test_cuda_latency_uses_events_and_allocator_peak():
    model = archbench.build("deit_ti", num_classes=10)
    lat = measure_latency(model, 224, device="cuda", batch_size=8, min_seconds=0.2)
    mem = measure_memory(model, 224, device="cuda", batch_size=8)
    assert lat.device == "cuda" and lat.median > 0
    assert mem.method == "cuda_allocator_peak_minus_weights" and mem.peak_bytes > 0
