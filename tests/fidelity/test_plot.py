"""archbench.fidelity.plot: one panel per analysed signal, τ in the titles, log axes where the values
span decades, reference seed spread as error bars, PNG bytes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from archbench.fidelity.analysis import analyse
from archbench.fidelity.plot import scatter_figure, scatter_png


def study(reference_seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        arch = {"arch_hash": f"a{i}", "status": "ok", "params": 1e5 * 2.0**i, "macs": np.nan,
                "latency_ms_median": 1.0 + i / 10}
        rows.append(dict(arch, fidelity="proxy", seed=0, val_acc=0.4 + i / 50, train_loss_sum=9 - i / 5, synflow=np.nan))
        rows += [dict(arch, fidelity="reference", seed=s, val_acc=0.6 + i / 40 + 0.01 * rng.normal())
                 for s in range(reference_seeds)]
    rows.append({"arch_hash": "a0", "status": "failed", "fidelity": "proxy", "seed": 1, "val_acc": 0.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("reference_seeds", [1, 2])
def test_one_panel_per_signal(reference_seeds):
    frame = study(reference_seeds)
    analysis = analyse(frame, n_boot=100)
    assert analysis.signals == ["params", "latency_ms_median", "val_acc", "train_loss_sum"]
    fig = scatter_figure(frame, analysis)
    assert len(fig.axes) == 4
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0] == f"params  τ={analysis.row('params').interval()}"
    assert all("τ=" in title for title in titles)
    scales = [ax.get_xscale() for ax in fig.axes]
    assert scales == ["log", "linear", "linear", "linear"]  # params spans 2.7 decades
    error_bars = [len(ax.containers) for ax in fig.axes]
    assert error_bars == [reference_seeds - 1] * 4
    assert fig.axes[3].get_xlabel().endswith("(lower predicts better)")
    y = fig.axes[2].collections[-1].get_offsets()[:, 1]
    assert y.min() == pytest.approx(100 * analysis_reference(frame).min())


def analysis_reference(frame: pd.DataFrame) -> pd.Series:
    ok = frame[(frame["status"] == "ok") & (frame["fidelity"] == "reference")]
    return ok.groupby("arch_hash")["val_acc"].mean()


def test_png_bytes_and_file(tmp_path):
    frame = study(2)
    analysis = analyse(frame, n_boot=100)
    data = scatter_png(frame, analysis)
    assert data.startswith(b"\x89PNG")
    path = tmp_path / "fidelity.png"
    assert scatter_png(frame, analysis, path) == data
    assert path.read_bytes() == data


def test_no_signal_still_draws():
    frame = study(1)[["arch_hash", "status", "fidelity", "seed", "val_acc"]]
    frame = frame[frame["fidelity"] == "reference"]
    analysis = analyse(frame, n_boot=20)
    assert analysis.rows == []
    assert len(scatter_figure(frame, analysis).axes) == 0
    assert scatter_png(frame, analysis).startswith(b"\x89PNG")
