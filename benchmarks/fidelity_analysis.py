"""Speed of the fidelity analysis: `archbench.fidelity.analysis.analyse` (τ and ρ of every bootstrap
resample at once, vectorised) against the same intervals from scipy's own loop (`scipy.stats.bootstrap`
calling `kendalltau` and `spearmanr` once per resample), on the same synthetic study, in one process.

Run:  python benchmarks/fidelity_analysis.py [--archs 16] [--boot 2000] [--repeats 3]
Prints seconds of both and their ratio, and checks the two give the same intervals.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from archbench.fidelity.analysis import SIGNALS, analyse, arch_table


def synthetic_study(archs: int, seed: int = 0) -> pd.DataFrame:
    """A study of ``archs`` architectures: every signal a noisy view of one hidden quality."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=archs)
    rows = []
    for i in range(archs):
        arch = {name: float(quality[i] * s.sign + rng.normal()) for name, s in SIGNALS.items() if s.arch_level}
        rows.append({"arch_hash": f"a{i}", "fidelity": "reference", "seed": 0, "status": "ok", "val_acc": 0.8 + 0.02 * quality[i], **arch})
        for seed_index in range(2):
            trained = {"val_acc": 0.7 + 0.02 * quality[i] + 0.01 * rng.normal(), "train_loss_sum": 2 - 0.1 * quality[i] + 0.05 * rng.normal(),
                       "val_loss": 1 - 0.05 * quality[i] + 0.03 * rng.normal()}
            rows.append({"arch_hash": f"a{i}", "fidelity": "proxy", "seed": seed_index, "status": "ok", **arch, **trained})
    return pd.DataFrame(rows)


def scipy_loop(frame: pd.DataFrame, *, boot: int) -> dict[str, list[float]]:
    """τ and ρ intervals of every signal by scipy.stats.bootstrap with a per-resample statistic:
    ``{signal: [τ low, τ high, ρ low, ρ high]}``."""
    table = arch_table(frame)
    out = {}
    for name, signal in SIGNALS.items():
        if name not in table:
            continue
        both = table[[name, "reference_acc"]].dropna()
        x, y = both[name].to_numpy() * signal.sign, both["reference_acc"].to_numpy()
        out[name] = []
        for statistic in (lambda a, b: stats.kendalltau(a, b)[0], lambda a, b: stats.spearmanr(a, b)[0]):
            res = stats.bootstrap((x, y), statistic, paired=True, vectorized=False, n_resamples=boot, method="percentile", rng=0)
            out[name] += [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return out


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=16)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = synthetic_study(args.archs)
    ours = best_of(args.repeats, lambda: analyse(frame, n_boot=args.boot))
    theirs = best_of(1, lambda: scipy_loop(frame, boot=args.boot))
    result, reference = analyse(frame, n_boot=args.boot), scipy_loop(frame, boot=args.boot)
    signals = len(result.rows)
    gap = max(
        abs(a - b)
        for row in result.rows
        for a, b in zip((row.kendall_tau_low, row.kendall_tau_high, row.spearman_rho_low, row.spearman_rho_high), reference[row.signal])
    )
    print(f"largest difference between the two sets of interval bounds: {gap:.1e}")
    print(f"{args.archs} archs × {signals} signals × {args.boot} resamples (τ and ρ intervals, verdicts, noise ceilings)")
    print(f"analyse (vectorised): {ours:.2f} s   scipy per-resample loop (τ and ρ intervals only): {theirs:.2f} s   ratio {theirs / ours:.1f}×")


if __name__ == "__main__":
    main()
