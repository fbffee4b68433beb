"""`archbench space stats`: cost distributions, constraint acceptance, block frequencies and extremes
over unconstrained samples, each counted exactly as the sampler's constraint check counts it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archbench import space
from archbench.cli import main
from archbench.measure.cost import full_cost
from archbench.space._stats import histogram, space_stats


def test_stats_agree_with_the_samples_counted_one_by_one():
    sp = space.load("tiny_cpu").with_constraints(max_macs="20M", max_params="0.1M")
    stats = space_stats(sp, 24, seed=3)
    assert [s.seed for s in stats.samples] == list(range(3, 27))
    for s in stats.samples[:6]:  # the whole model counted, no cache: the same figures
        full = full_cost(sp.sample(s.seed, constrained=False))
        assert (s.params, s.macs) == (full.params, full.macs)
    runnable = stats.runnable
    shares = stats.acceptance()
    assert shares["max_macs"] == sum(1 for s in runnable if s.macs <= 20e6) / 24
    assert shares["max_params"] == sum(1 for s in runnable if s.params <= 0.1e6) / 24
    both = sum(1 for s in runnable if s.macs <= 20e6 and s.params <= 0.1e6) / 24
    assert shares["all"] == both and 0 < both < 1  # the bounds cut through this space
    # Block frequencies are shares of all blocks drawn (by depth) and sum to one.
    freq = stats.block_frequencies()
    assert sum(f["blocks"] for f in freq.values()) == pytest.approx(1.0)
    drawn = sum(d for s in stats.samples for _, d in s.blocks)
    for kind, f in freq.items():
        assert f["blocks"] == pytest.approx(sum(d for s in stats.samples for k, d in s.blocks if k == kind) / drawn)
    extremes = stats.extremes()
    assert extremes["most_macs"].macs == max(s.macs for s in runnable)
    assert extremes["fewest_params"].params == min(s.params for s in runnable)
    q = stats.quantiles("macs")
    assert q["p0"] == extremes["fewest_macs"].macs and q["p100"] == extremes["most_macs"].macs


def test_max_latency_ms_is_checked_against_the_one_thread_prediction_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from archbench.measure import layer_cost

    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path))  # a latency table of the test's own
    layer_cost.reset_store(None)
    try:
        sp = space.load("tiny_cpu")
        first = space_stats(sp, 6, latency_threads=1)  # times the layers; the table is warm after
        bound = sorted(s.latency_pred_ms for s in first.runnable)[len(first.runnable) // 2]
        stats = space_stats(sp.with_constraints(max_latency_ms=bound), 6, latency_threads=1)
        accepted = sum(1 for s in stats.runnable if s.latency_pred_ms <= bound) / 6
        assert stats.acceptance()["max_latency_ms"] == accepted and 0 < accepted < 1
        assert stats.to_dict()["latency_threads"] == 1
        unpredicted = space_stats(sp.with_constraints(max_latency_ms=bound), 6)
        assert "max_latency_ms" not in unpredicted.acceptance()  # no prediction at its thread count: not checked
    finally:
        layer_cost.reset_store(None)


def test_histogram_bins_cover_every_value_once():
    values = [1e6, 2e6, 5e6, 1e7, 3e7, 1e8]
    bins = histogram(values, bins=5)
    assert sum(c for _, _, c in bins) == len(values)
    assert bins[0][0] == pytest.approx(1e6) and bins[-1][1] == pytest.approx(1e8)


def test_space_stats_cli_json_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert main(["space", "stats", "tiny_cpu", "--samples", "12", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 12 and len(data["costs"]) == 12
    assert set(data["acceptance"]) >= {"runs", "all"} and data["macs"]["p0"] <= data["macs"]["p100"]
    plot = tmp_path / "out" / "stats.png"
    assert main(["space", "stats", "tiny_cpu", "--samples", "12", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "share of samples accepted" in out and "block types" in out and "extremes" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["space", "stats", "tiny_cpu", "--samples", "100000"], "--samples must be between 1 and 10000 (each sample is built and counted), got 100000"),
        (["space", "stats", "no_such_space"], "no_such_space"),
    ],
)
def test_space_stats_refuses_bad_input_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err


def test_space_stats_refuses_an_unwritable_plot_before_counting(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert main(["space", "stats", "tiny_cpu", "--samples", "5", "--plot", str(tmp_path)]) == 2
    assert "--plot" in capsys.readouterr().err
