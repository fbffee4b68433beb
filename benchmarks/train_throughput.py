"""Proxy-training throughput: archbench's train_proxy against a bare PyTorch loop, same model, data,
batch size, threads and optimiser (AdamW); prints training images/s of both and their ratio.

Run:  OMP_NUM_THREADS=1 python benchmarks/train_throughput.py [--models deit_ti,convnext_t] [--threads 1]
The target is a ratio >= 0.9: the harness (scheduler, loss checks, timing) must cost under 10%.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import archbench
from archbench import ArchSpec, zoo
from archbench.train import Dataset, TrainConfig, load_dataset, scale_arch, train_proxy

TINY = {
    "name": "tiny_conv",
    "layout": "pyramid",
    "stem": {"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
    "stages": [
        {"depth": 1, "dim": 32, "block": {"type": "convnext", "params": {"kernel": 3}}},
        {"depth": 1, "dim": 64, "block": {"type": "convnext", "params": {"kernel": 3}}, "downsample": {"type": "conv"}},
    ],
    "head": {"type": "linear"},
}


def bare_loop(model: nn.Module, data: Dataset, *, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """The loop one writes by hand: normalised float tensors, randperm batches, AdamW. Images/s."""
    torch.manual_seed(seed)
    x = data.normalize(data.train_x)  # normalised once, up front: the bare loop's best case
    y = data.train_y
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    g = torch.Generator().manual_seed(seed)
    n = len(y) - len(y) % batch_size
    model.train()
    images, seconds = 0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(y), generator=g)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += len(idx)
        seconds += time.perf_counter() - start
    return images / seconds


def run_bare(spec: ArchSpec, data: Dataset, args: argparse.Namespace, rep: int) -> float:
    torch.manual_seed(rep)
    model = archbench.build(spec)
    return bare_loop(model, data, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=rep)


def run_ours(spec: ArchSpec, data: Dataset, args: argparse.Namespace, rep: int) -> float:
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, warmup_epochs=0.5, threads=args.threads, seed=rep, device="cpu")
    result = train_proxy(spec, data, config)
    return result.images_per_second


def model_spec(name: str, img_size: int, num_classes: int) -> ArchSpec:
    if name == "tiny_conv":
        return ArchSpec.from_dict({**TINY, "input": {"img_size": img_size, "num_classes": num_classes}})
    return scale_arch(zoo.get(name), width_mult=0.25, depth_mult=0.34, img_size=img_size, num_classes=num_classes)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        name = fields.get("Model name", platform.processor()).strip()
        cores = fields.get("CPU(s)", "?").strip()
        return f"{name}, {cores} CPU(s) visible"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny_conv,deit_ti,convnext_t", help="comma-separated: tiny_conv or zoo names (scaled 0.25 / 0.34)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each; the best of each is kept")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, img_size=args.img_size, seed=0)
    print(f"# {machine()}; torch {torch.__version__}, archbench {archbench.__version__}, python {sys.version.split()[0]}")
    print(f"# {data!r}; batch {args.batch_size}, {args.epochs} epochs, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'model':<14} {'params':>9} {'bare img/s':>11} {'archbench img/s':>16} {'ratio':>6}")
    worst = float("inf")
    for name in args.models.split(","):
        spec = model_spec(name, args.img_size, data.num_classes)
        bare, ours = [], []
        for rep in range(args.repeats):
            # Alternate which goes first, so a noisy neighbour on a shared machine hits both alike.
            runs = [lambda: bare.append(run_bare(spec, data, args, rep)), lambda: ours.append(run_ours(spec, data, args, rep))]
            for run in runs if rep % 2 == 0 else runs[::-1]:
                run()
        params = sum(p.numel() for p in archbench.build(spec).parameters())
        b, o = max(bare), max(ours)
        ratio = o / b
        worst = min(worst, ratio)
        print(f"{name:<14} {params:>9,} {b:>11.0f} {o:>16.0f} {ratio:>6.3f}")
    print(f"# worst ratio {worst:.3f} (target >= 0.9)")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
