"""CPU latency of DynamicViT against its dense DeiT twin, in one process, in interleaved rounds (so
a load change on a shared machine hits both alike): MACs and median latency of each, and the ratios.

Run: python benchmarks/dynamicvit_latency.py [--pair dynamicvit_deit_s deit_s] [--threads 2] [--rounds 5]
Prints one line per round and a summary: MAC ratio and latency ratio (median of the rounds' ratios).
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import logging
import statistics

import archbench
from archbench.measure import measure_latency
from archbench.measure.macs import count_macs

logging.getLogger("fvcore").setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pair", nargs=2, default=["dynamicvit_deit_s", "deit_s"], metavar=("PRUNED", "DENSE"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    models = {name: archbench.build(name).eval() for name in args.pair}
    size = archbench.load_arch(args.pair[0]).img_size
    macs = {name: count_macs(model, size).total for name, model in models.items()}
    ratios = []
    for r in range(args.rounds):
        medians = {
            name: measure_latency(model, size, batch_size=args.batch_size, threads=args.threads, min_repeats=10,
                                  max_repeats=200, min_seconds=1.0, max_seconds=6.0, rel_tolerance=0.02).median
            for name, model in models.items()
        }
        ratios.append(medians[args.pair[0]] / medians[args.pair[1]])
        print(f"round {r + 1}: " + ", ".join(f"{n} {m:.1f} ms" for n, m in medians.items()) + f", ratio {ratios[-1]:.3f}", flush=True)
    pruned, dense = args.pair
    print(f"MACs: {pruned} {macs[pruned] / 1e9:.3f} G, {dense} {macs[dense] / 1e9:.3f} G, ratio {macs[pruned] / macs[dense]:.3f}")
    print(f"latency ratio (median of {args.rounds} rounds, batch {args.batch_size}, {args.threads} threads): "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
