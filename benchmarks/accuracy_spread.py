"""How wide the validation accuracies of a fidelity study's architectures spread after each epoch, and
how well each epoch's accuracy ranks the reference trainings' final accuracy.

Issue 10 asks the default search's accuracies to span 10 points. This reads what a finished
`archbench fidelity` study measured and prints, for the proxy and the reference fidelity, epoch by
epoch: the range of accuracies over the architectures (mean over seeds), its width in points, and
the Kendall τ-b of that epoch's accuracy against the reference's final accuracy. If a wide spread
appears only where τ is low, the spread comes from training stage, not from the architectures.

Run:  python benchmarks/accuracy_spread.py RUN [RUN ...]    (fidelity run folders)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def per_epoch(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (fidelity, epoch): accuracy range over architectures and τ against the reference."""
    ok = trials[trials.status == "ok"]
    final = ok[ok.fidelity == "reference"].groupby("arch_hash").val_acc.mean()
    rows = []
    for fidelity, group in ok.groupby("fidelity", sort=False):
        epochs = min(len(h) for h in group.val_acc_history)
        for epoch in range(epochs):
            acc = group.assign(acc=[h[epoch] for h in group.val_acc_history]).groupby("arch_hash").acc.mean()
            both = pd.concat([acc, final], axis=1, join="inner").to_numpy()
            tau = stats.kendalltau(both[:, 0], both[:, 1]).statistic if len(both) > 2 else np.nan
            rows.append({"fidelity": fidelity, "epoch": epoch + 1, "archs": len(acc), "min %": 100 * acc.min(),
                         "max %": 100 * acc.max(), "spread (points)": 100 * (acc.max() - acc.min()), "τ vs reference": tau})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="fidelity run folders (each with trials/)")
    args = parser.parse_args()
    for run in args.runs:
        table = per_epoch(pd.read_parquet(run / "trials"))
        print(f"\n{run}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
