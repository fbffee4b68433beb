"""How long `archbench profile --no-latency` takes per model against plain fvcore on the same
models, and how reproducible latency medians are between two consecutive measurements.

Run: python benchmarks/profile_speed.py [--models deit_s swin_t ...] [--latency-models ...]
Prints one row per model with the ratio ours / plain fvcore (build time excluded from both).
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import logging
import time

import torch
from fvcore.nn import FlopCountAnalysis

import archbench
import archbench.zoo
from archbench.measure import count_macs, count_params, measure_latency
from archbench.measure.provenance import cpu_name

logging.getLogger("fvcore").setLevel(logging.ERROR)


def plain_fvcore(model: torch.nn.Module, img_size: int) -> float:
    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, img_size, img_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return analysis.total()


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=["deit_s", "swin_t", "convit_s", "mixer_b16", "hornet_t_gf", "focal_t", "cmt_s"])
    parser.add_argument("--latency-models", nargs="*", default=["deit_s", "swin_t", "resmlp_s12"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'model':<14}{'ours s':>9}{'fvcore s':>10}{'ratio':>8}{'GMACs ours':>12}{'fvcore':>9}")
    for name in args.models:
        if name not in archbench.zoo.names():
            continue
        arch = archbench.load_arch(name)
        model = archbench.build(arch)
        size = arch.input.img_size
        ours = best_of(lambda: (count_params(model), count_macs(model, size)))
        plain = best_of(lambda: plain_fvcore(model, size))
        print(f"{name:<14}{ours:>9.2f}{plain:>10.2f}{ours / plain:>8.2f}{count_macs(model, size).total / 1e9:>12.2f}{plain_fvcore(model, size) / 1e9:>9.2f}")
    print("\nlatency reproducibility (batch 1, two consecutive measurements)")
    print(f"{'model':<14}{'median 1 ms':>12}{'median 2 ms':>12}{'spread':>8}{'repeats':>9}")
    for name in args.latency_models:
        model = archbench.build(name)
        size = archbench.load_arch(name).input.img_size
        first = measure_latency(model, size, threads=args.threads)
        second = measure_latency(model, size, threads=args.threads)
        spread = abs(first.median - second.median) / min(first.median, second.median)
        print(f"{name:<14}{first.median:>12.2f}{second.median:>12.2f}{spread:>7.1%}{first.repeats:>5}/{second.repeats}")


if __name__ == "__main__":
    main()
