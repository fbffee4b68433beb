"""Cost at screening speed: `arch_cost` of hybrid_vit samples from the per-layer cache (cold: empty
cache file; warm: every layer known, from memory and from the file) against building each model and
counting it whole (`full_cost`, the meta counter the sampler's constraint check used), in one process.

Run:  python benchmarks/screen_speed.py [--samples 1000] [--baseline-samples 1000] [--threads 2]
Prints architectures per second of each, the warm/baseline ratio, and checks that both agree.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import os
import tempfile
import time

import torch

from archbench import space
from archbench.measure import layer_cost
from archbench.measure.cost import arch_cost, clear_cache, full_cost
from archbench.measure.provenance import cpu_name


def timed(archs: list, fn) -> tuple[float, list]:
    start = time.perf_counter()
    out = []
    for arch in archs:
        try:
            cost = fn(arch)
            out.append((cost.params, cost.macs))
        except Exception as err:  # noqa: BLE001 - a sample that does not run is part of the workload
            out.append(type(err).__name__)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--space", default="hybrid_vit")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--baseline-samples", type=int, default=1000, help="the first N of the samples, built and counted whole")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["ARCHBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="screen-speed-")  # a cold cache file
    layer_cost.reset_store(None)

    sp = space.load(args.space)
    archs = [sp.sample(seed, constrained=False) for seed in range(args.samples)]
    base = archs[: args.baseline_samples]

    cold_s, cold = timed(archs, arch_cost)
    entries = len(layer_cost.store())
    clear_cache(disk=True)  # nothing in memory: every layer read back from the file
    disk_s, from_disk = timed(archs, arch_cost)
    clear_cache(layers=False)  # the layers stay in memory, the per-architecture memo is emptied
    warm_s, warm = timed(archs, arch_cost)
    clear_cache(layers=False)
    warm_base_s, _ = timed(base, arch_cost)
    full_s, full = timed(base, full_cost)

    assert cold == from_disk == warm, "the cache gave different figures on a second pass"
    mismatches = sum(1 for a, b in zip(warm[: len(base)], full) if a != b)
    failed = sum(1 for c in cold if isinstance(c, str))
    print(f"{args.space}: {args.samples} samples ({failed} do not run), {entries} distinct layers; "
          f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}")
    print("| cost of each sample | archs | seconds | archs/s | vs build + full count |")
    print("|---|---:|---:|---:|---:|")
    full_rate = len(base) / full_s
    rows = [
        ("build + full count (meta), no cache", len(base), full_s),
        ("per-layer cache, cold (empty file)", len(archs), cold_s),
        ("per-layer cache, warm from the file", len(archs), disk_s),
        ("per-layer cache, warm in memory", len(archs), warm_s),
        (f"per-layer cache, warm in memory (first {len(base)})", len(base), warm_base_s),
    ]
    for label, n, seconds in rows:
        rate = n / seconds
        print(f"| {label} | {n} | {seconds:.2f} | {rate:,.0f} | {rate / full_rate:,.1f}× |")
    print(f"per-layer sum == full count on all {len(base)} baseline samples: {mismatches == 0} ({mismatches} differ)")


if __name__ == "__main__":
    main()
