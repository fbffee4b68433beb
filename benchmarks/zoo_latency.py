"""CPU latency of every zoo preset at its own resolution, batch 1 and batch 32, in one run.

Run: python benchmarks/zoo_latency.py [--threads 2] [--batches 1 32] [--out benchmarks/zoo_latency.md]
Prints (and writes) a Markdown table: median ms and p90 per batch size, and images/s at batch 32.
Figures are only comparable within one run on one machine: the header names it.
"""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore")  # before torch: its import-time deprecation notes are not results

import argparse
import logging
import platform
from pathlib import Path

import torch

import archbench
import archbench.zoo
from archbench.measure import measure_latency
from archbench.measure.provenance import cpu_name, versions

logging.getLogger("fvcore").setLevel(logging.ERROR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    names = args.models or archbench.zoo.names()
    v = versions()
    lines = [
        f"machine: {cpu_name()} ({platform.machine()}), {args.threads} threads, torch {v['torch']}, timm {v['timm']}, float32",
        "",
        "| model | res | " + " | ".join(f"b{b} median ms | b{b} p90 ms" for b in args.batches) + f" | img/s (b{args.batches[-1]}) |",
        "|---|---|" + "---|---|" * len(args.batches) + "---|",
    ]
    print("\n".join(lines), flush=True)
    for name in names:
        arch = archbench.load_arch(name)
        size = arch.input.img_size
        model = archbench.build(arch).eval()
        cells = [name, str(size)]
        last = None
        for batch in args.batches:
            # Large batches are slow on 2 cores: fewer, longer repeats keep the run under an hour.
            repeats = 10 if batch == 1 else 3
            last = measure_latency(model, size, batch_size=batch, threads=args.threads, min_repeats=repeats,
                                   max_repeats=repeats * 10, min_seconds=1.0, max_seconds=20.0, rel_tolerance=0.02)
            cells += [f"{last.median:.1f}", f"{last.p90:.1f}"]
        cells.append(f"{args.batches[-1] / (last.median / 1e3):.1f}" if last else "–")
        line = "| " + " | ".join(cells) + " |"
        lines.append(line)
        print(line, flush=True)
        del model
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
