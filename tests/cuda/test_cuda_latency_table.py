"""The per-layer latency table on CUDA: a table of its own per GPU model, layers timed with events."""
from __future__ import annotations

import pytest
import torch

from archbench import space
from archbench.measure.latency_table import predict_latency, timing_setup

pytestmark = pytest.mark.cuda


def test_the_cuda_table_is_its_own_and_predicts():
    arch = space.load("tiny_cpu").sample(0)
    setup = timing_setup("cuda")
    assert torch.cuda.get_device_name(0) in setup.counter and setup.counter != timing_setup("cpu").counter
    first = predict_latency(arch, device="cuda")
    assert first.layer_sum_ms > 0 and first.timed > 0
    assert predict_latency(arch, device="cuda").timed == 0
