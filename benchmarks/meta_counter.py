"""The cold per-layer cost cache with archbench's memoising meta counter (MetaMacCounter) against the
same cache measuring each new layer with torch's FlopCounterMode (what it used before), in one
process, each from an empty cache file; both must give the same figures for every sample.

Run:  python benchmarks/meta_counter.py [--space hybrid_vit] [--samples 300] [--threads 2]
Prints the seconds and layers measured of each, the ratio, and whether all figures agree.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from screen_speed import timed  # benchmarks/ is on the path of a script run from it
from torch.utils.flop_counter import FlopCounterMode

from archbench import space
from archbench.measure import layer_cost, macs
from archbench.measure.cost import arch_cost, clear_cache
from archbench.measure.meta_counter import memo_info
from archbench.measure.provenance import cpu_name


def flopcountermode_macs_of(run: Callable[[], Any]) -> int:
    """The baseline: a layer's MACs by torch's FlopCounterMode, as the cache measured them before."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        run()
    return counter.get_total_flops() // 2


def cold_pass(archs: list, counter: Callable[[Callable[[], Any]], int]) -> tuple[float, int, list]:
    os.environ["ARCHBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="meta-counter-")  # an empty cache file
    layer_cost.reset_store(None)
    clear_cache()
    macs.meta_macs_of = counter  # the cache looks the counter up on each measurement
    before = layer_cost.measured_total()
    seconds, out = timed(archs, arch_cost)
    return seconds, layer_cost.measured_total() - before, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--space", default="hybrid_vit")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = macs.meta_macs_of
    sp = space.load(args.space)
    archs = [sp.sample(seed, constrained=False) for seed in range(args.samples)]
    base_s, base_layers, base = cold_pass(archs, flopcountermode_macs_of)
    ours_s, ours_layers, got = cold_pass(archs, ours)
    macs.meta_macs_of = ours
    print(f"{args.space}: {args.samples} samples, cold cache each; {cpu_name()}, {os.cpu_count()} cores, "
          f"{args.threads} threads, torch {torch.__version__}")
    print("| layer counter | seconds | layers measured | ms a layer | vs FlopCounterMode |")
    print("|---|---:|---:|---:|---:|")
    print(f"| torch FlopCounterMode | {base_s:.1f} | {base_layers} | {1000 * base_s / max(base_layers, 1):.1f} | 1.0× |")
    print(f"| archbench MetaMacCounter | {ours_s:.1f} | {ours_layers} | {1000 * ours_s / max(ours_layers, 1):.1f} | "
          f"{base_s / ours_s:.1f}× |")
    print(f"memo: {memo_info()}")
    differ = sum(1 for a, b in zip(base, got) if a != b)
    print(f"same params and MACs on all {len(archs)} samples: {differ == 0} ({differ} differ)")


if __name__ == "__main__":
    main()
