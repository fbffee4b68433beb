"""archbench.fidelity.analysis: τ/ρ against scipy, bootstrap intervals against a direct
scipy.stats.bootstrap call, top-25% overlap, noise ceilings, the three-way verdict, serialisation."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from archbench.fidelity.analysis import (
    COLUMNS,
    SIGNALS,
    FidelityAnalysis,
    analyse,
    arch_table,
    kendall_tau_b,
    spearman_rho,
    top_overlap,
)


def evals(reference, proxy_acc=None, **signals) -> pd.DataFrame:
    """One reference row (val_acc = reference) and one proxy row (val_acc = proxy_acc, the signals)
    per arch a00, a01, ... (sorted as the analysis sorts them)."""
    rows = []
    for i, ref in enumerate(reference):
        arch = f"a{i:02d}"
        rows.append({"arch_hash": arch, "arch_summary": f"arch {i}", "fidelity": "reference", "seed": 0, "status": "ok",
                     "val_acc": ref})
        proxy = {name: float(values[i]) for name, values in signals.items()}
        rows.append(dict(arch_hash=arch, arch_summary=f"arch {i}", fidelity="proxy", seed=0, status="ok",
                         val_acc=np.nan if proxy_acc is None else proxy_acc[i], **proxy))
    return pd.DataFrame(rows)


REF = np.array([0.71, 0.64, 0.80, 0.55, 0.62, 0.77, 0.69, 0.58, 0.73, 0.66, 0.60, 0.75])
TIED = np.array([3.0, 1.0, 5.0, 1.0, 2.0, 5.0, 3.0, 2.0, 4.0, 3.0, 1.0, 4.0])  # ties, mostly concordant


def test_vectorised_statistics_equal_scipy_on_each_resample():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(50, 9)).astype(float)  # many ties
    y = rng.normal(size=(50, 9))
    expected_tau = [stats.kendalltau(a, b).statistic for a, b in zip(x, y)]
    expected_rho = [stats.spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(kendall_tau_b(x, y), expected_tau, rtol=0, atol=1e-13)
    np.testing.assert_allclose(spearman_rho(x, y), expected_rho, rtol=0, atol=1e-13)
    with np.errstate(all="raise"):
        assert math.isnan(float(kendall_tau_b(np.ones(5), np.arange(5.0))))  # constant: NaN, no warning
        assert math.isnan(float(spearman_rho(np.ones(5), np.arange(5.0))))


def test_tau_and_rho_equal_scipy_with_ties():
    row = analyse(evals(REF, synflow=TIED), n_boot=50).row("synflow")
    assert row.n == 12
    assert row.kendall_tau == pytest.approx(stats.kendalltau(TIED, REF).statistic, abs=1e-12)
    assert row.spearman_rho == pytest.approx(stats.spearmanr(TIED, REF).statistic, abs=1e-12)


def test_orientation_makes_an_anti_correlated_loss_positive():
    result = analyse(evals(REF, train_loss_sum=10.0 - 3.0 * REF, val_loss=REF), n_boot=50)
    assert result.row("train_loss_sum").sign == -1
    assert result.row("train_loss_sum").kendall_tau == pytest.approx(1.0)
    assert result.row("train_loss_sum").spearman_rho == pytest.approx(1.0)
    assert result.row("val_loss").kendall_tau == pytest.approx(-1.0)  # a loss that rises with accuracy


@pytest.mark.parametrize("column,statistic", [("kendall_tau", stats.kendalltau), ("spearman_rho", stats.spearmanr)])
def test_bootstrap_interval_equals_a_direct_scipy_call(column, statistic):
    row = analyse(evals(REF, snip=TIED), n_boot=400, seed=3).row("snip")
    direct = stats.bootstrap((TIED, REF), lambda a, b: statistic(a, b).statistic, paired=True, vectorized=False,
                             method="percentile", n_resamples=400, rng=3, confidence_level=0.95)
    assert not np.isnan(direct.bootstrap_distribution).any()
    assert getattr(row, f"{column}_low") == pytest.approx(direct.confidence_interval.low, abs=1e-12)
    assert getattr(row, f"{column}_high") == pytest.approx(direct.confidence_interval.high, abs=1e-12)
    assert row.note == ""


def test_confidence_level_is_used():
    narrow = analyse(evals(REF, snip=TIED), n_boot=400, confidence=0.5).row("snip")
    wide = analyse(evals(REF, snip=TIED), n_boot=400, confidence=0.99).row("snip")
    assert wide.kendall_tau_low < narrow.kendall_tau_low < narrow.kendall_tau
    assert narrow.kendall_tau < narrow.kendall_tau_high < wide.kendall_tau_high


def test_top_overlap_hand_example():
    # 8 archs: top-2 by reference {a, b}; signal's top-2 {a, c}
    reference = np.array([8.0, 7, 1, 2, 3, 4, 5, 6])
    signal = np.array([8.0, 1, 7, 2, 3, 4, 5, 6])
    assert top_overlap(signal, reference) == (0.5, 2)
    row = analyse(evals(reference / 10, nwot=signal), n_boot=20).row("nwot")
    assert (row.top_k, row.top_overlap) == (2, 0.5)


def test_top_overlap_sizes_and_ties():
    assert top_overlap(np.arange(3.0), np.arange(3.0)) == (1.0, 1)  # ceil(3/4) = 1
    assert top_overlap(np.arange(9.0), np.arange(9.0))[1] == 3  # ceil(9/4) = 3
    # a constant signal shares its 2 places among all 8 archs: expected overlap 2/8
    assert top_overlap(np.ones(8), np.arange(8.0)) == (0.25, 2)
    # the 2nd place tied between two archs, one of them in the reference's top 2: half a hit
    assert top_overlap(np.array([9.0, 5, 5, 1, 0, 0, 0, 0]), np.array([9.0, 8, 1, 2, 3, 4, 5, 6]))[0] == pytest.approx(0.75)


def three_seed_frame(reference_seeds=((1.0, 2.0, 3.0, 4.0, 5.0),)) -> pd.DataFrame:
    per_seed = {0: [1, 2, 3, 4, 5], 1: [1, 2, 3, 5, 4], 2: [2, 1, 3, 4, 5]}  # τ(0,1) = τ(0,2) = 0.8, τ(1,2) = 0.6
    rows = [{"arch_hash": f"a{i}", "fidelity": "proxy", "seed": s, "status": "ok", "val_acc": v / 10}
            for s, values in per_seed.items() for i, v in enumerate(values)]
    rows += [{"arch_hash": f"a{i}", "fidelity": "reference", "seed": s, "status": "ok", "val_acc": v / 10}
             for s, values in enumerate(reference_seeds) for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_noise_ceiling_three_seeds():
    result = analyse(three_seed_frame(), n_boot=20)
    assert result.proxy_seed_pairs == 3
    assert result.proxy_seed_tau == pytest.approx((0.8 + 0.8 + 0.6) / 3)
    assert result.row("val_acc").seed_tau == pytest.approx(result.proxy_seed_tau)
    assert result.single_seed_tau == pytest.approx((1.0 + 0.8 + 0.8) / 3)  # each seed against the reference
    assert result.reference_seed_tau is None and result.reference_seed_pairs == 0


def test_reference_seeds_mean_spread_and_ceiling():
    frame = three_seed_frame(reference_seeds=((1, 2, 3, 4, 5), (1, 2, 3, 5, 4)))
    table = arch_table(frame)
    assert table.loc["a3", "reference_acc"] == pytest.approx(0.45)
    assert table.loc["a3", "reference_acc_std"] == pytest.approx(np.std([0.4, 0.5], ddof=1))
    assert (table["reference_seeds"] == 2).all()
    assert table.loc["a3", "val_acc"] == pytest.approx((0.4 + 0.5 + 0.4) / 3)  # proxy rows only
    result = analyse(frame, n_boot=20)
    assert (result.reference_seed_tau, result.reference_seed_pairs) == (pytest.approx(0.8), 1)


def test_arch_level_signal_from_any_row_when_no_proxy_row_has_it():
    frame = evals(REF, synflow=TIED)
    frame.loc[frame["fidelity"] == "reference", "params"] = np.arange(12.0) + 1.0
    assert arch_table(frame)["params"].tolist() == list(np.arange(12.0) + 1.0)


def verdict_frame(n=24, *, params_good: bool) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    reference = rng.uniform(0.5, 0.9, size=n)
    noise = rng.permutation(n).astype(float)
    params = reference * 1e6 if params_good else noise
    return evals(reference, params=params, macs=params * 3.0, snip=reference * 2.0, nwot=noise)


def test_verdict_three_ways():
    against_random = analyse(verdict_frame(params_good=False), n_boot=500)
    assert against_random.row("snip").beats_params == "beats"  # the reference itself vs random params
    assert against_random.row("snip").p_beats_params > 0.99
    assert against_random.row("snip").d_tau_params_low > 0
    assert against_random.row("macs").beats_params == "ties"  # a copy of params
    assert against_random.row("macs").d_tau_params_low == against_random.row("macs").d_tau_params_high == 0.0
    assert against_random.row("params").beats_params is None  # not compared with itself
    assert against_random.row("params").beats_macs == "ties"
    assert "snip (τ 1.00 [1.00, 1.00]) beats params" in against_random.verdict()
    against_good = analyse(verdict_frame(params_good=True), n_boot=500)
    assert against_good.row("nwot").beats_params == "loses"
    assert against_good.row("nwot").beats_macs == "loses"
    assert against_good.row("nwot").d_tau_params_high < 0


def test_missing_and_all_nan_signals_are_skipped():
    frame = evals(REF, synflow=TIED, nwot=np.full(12, np.nan))
    result = analyse(frame, n_boot=20)
    assert result.signals == ["synflow"]  # no params, macs, latency, nwot; no proxy val_acc either
    assert result.row("synflow").beats_params is None
    assert result.proxy_seed_tau is None and result.single_seed_tau is None
    assert result.verdict().startswith("best cheap signal here: synflow (τ ")
    with pytest.raises(KeyError, match="nwot"):
        result.row("nwot")


def test_rows_not_ok_are_ignored():
    frame = evals(REF, proxy_acc=REF - 0.2, params=TIED * 1e5, grad_norm=TIED)
    junk = frame.iloc[:6].copy()
    junk["status"] = "failed"
    junk["val_acc"] = [0.01, 0.99] * 3
    junk["grad_norm"] = 1e9
    lost = frame[frame["arch_hash"] == "a00"].assign(arch_hash="zz", status="timeout")  # an arch with no ok row
    noisy = pd.concat([frame, junk, lost], ignore_index=True)
    assert analyse(noisy, n_boot=100).to_dict() == analyse(frame, n_boot=100).to_dict()
    assert analyse(noisy, n_boot=100).n_archs == 12


def test_few_archs_and_degenerate_resamples():
    frame = evals([0.5, 0.6], nwot=[1.0, 2.0])
    row = analyse(frame, n_boot=20).row("nwot")
    assert row.n == 2 and math.isnan(row.kendall_tau) and "fewer than 3" in row.note
    # 4 archs, two signal values: many resamples are constant in the signal (τ undefined)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = analyse(evals([0.5, 0.6, 0.7, 0.8], nwot=[1.0, 1.0, 2.0, 2.0]), n_boot=400).row("nwot")
    assert "resamples degenerate" in row.note
    assert row.kendall_tau_low <= row.kendall_tau <= row.kendall_tau_high or math.isnan(row.kendall_tau_low)


def test_frame_dict_and_json_round_trip():
    frame = evals(REF, proxy_acc=REF + np.linspace(-0.05, 0.05, 12), params=TIED * 1e5, macs=TIED * 1e7,
                  train_loss_sum=5 - REF, latency_ms_median=[np.nan] * 10 + [1.0, 2.0])
    result = analyse(frame, n_boot=100)
    table = result.to_frame()
    assert tuple(table.columns) == COLUMNS
    assert table["signal"].tolist() == [s for s in SIGNALS if s in result.signals]  # SIGNALS order
    assert "fewer than 3" in result.row("latency_ms_median").note  # a row full of NaN
    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = FidelityAnalysis.from_dict(json.loads(text))
    assert back.to_dict() == data
    pd.testing.assert_frame_equal(back.to_frame(), table)
    assert back.verdict() == result.verdict()
    assert math.isnan(back.row("latency_ms_median").kendall_tau)


def test_deterministic_for_a_seed():
    frame = evals(REF, proxy_acc=REF - 0.1, snip=TIED)
    assert analyse(frame, n_boot=200, seed=5).to_dict() == analyse(frame, n_boot=200, seed=5).to_dict()
    other = analyse(frame, n_boot=200, seed=6).row("snip")
    assert analyse(frame, n_boot=200, seed=5).row("snip").kendall_tau_low != other.kendall_tau_low


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_boot"):
        analyse(evals(REF, snip=TIED), n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        analyse(evals(REF, snip=TIED), confidence=95)
    with pytest.raises(ValueError, match="fidelity"):
        analyse(pd.DataFrame({"arch_hash": ["a"], "seed": [0], "status": ["ok"], "val_acc": [0.5]}))


def test_sixteen_archs_every_signal_analysed():
    # (Speed is measured in benchmarks/, not asserted here: a loaded machine must not fail a test.)
    rng = np.random.default_rng(0)
    quality = rng.normal(size=16)
    signals = {name: quality * SIGNALS[name].sign + rng.normal(size=16) for name in SIGNALS if name != "val_acc"}
    frame = evals(0.7 + 0.05 * quality, proxy_acc=0.5 + 0.05 * quality + 0.02 * rng.normal(size=16), **signals)
    result = analyse(frame, n_boot=2000)
    assert len(result.rows) == len(SIGNALS) == 11
