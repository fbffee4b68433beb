"""The per-layer latency table: each distinct layer timed once per machine, device and thread count,
kept beside the cost cache; predictions sum it and apply the fit stored by `calibrate`."""
from __future__ import annotations

from pathlib import Path

import pytest

from archbench import space
from archbench.measure import layer_cost
from archbench.measure._layer_store import LayerStore
from archbench.measure.cost import clear_cache
from archbench.measure.latency_table import (
    calibrate,
    load_calibration,
    predict_latency,
    timing_setup,
)


@pytest.fixture
def fresh_store(tmp_path: Path):
    layer_cost.reset_store(LayerStore(tmp_path / "layers.sqlite"))
    clear_cache()
    yield
    layer_cost.reset_store(None)
    clear_cache()


def test_each_layer_is_timed_once_per_thread_count(fresh_store):
    arch = space.load("tiny_cpu").sample(0, constrained=False)  # drawn, not counted yet
    sums = layer_cost.layer_sums(arch)  # the distinct layers, counted (not timed)
    first = predict_latency(arch)
    assert first.timed == sums.measured > 0  # every distinct layer timed once
    assert first.layer_sum_ms > 0 and not first.calibrated and first.latency_pred_ms == first.layer_sum_ms
    again = predict_latency(arch)
    assert again.timed == 0 and again.layer_sum_ms == first.layer_sum_ms  # read from the table
    setup = timing_setup()  # another thread count or device is another table
    assert setup.counter != timing_setup(threads=2).counter and setup.machine


@pytest.mark.slow  # times three whole networks as trials time them (a second or more each)
def test_calibration_is_fitted_stored_and_applied(fresh_store):
    sp = space.load("tiny_cpu")
    fit, pairs = calibrate([sp.sample(s) for s in range(3)])
    assert fit.networks == 3 and len(pairs) == 3 and all(m > 0 and s > 0 for s, m in pairs)
    assert fit.offset_ms == 0.0 and fit.scale == sorted(m / s for s, m in pairs)[1]  # the median ratio
    assert load_calibration(timing_setup()) == fit
    found = predict_latency(sp.sample(5))
    assert found.calibrated and found.latency_pred_ms == pytest.approx(fit.scale * found.layer_sum_ms + fit.offset_ms)
