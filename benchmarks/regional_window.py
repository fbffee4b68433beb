"""RegionViT's R2L block on maps no larger than its window: the window cropped to the map (archbench)
against the window padded and masked (the release's computation), same weights, same process.

At a 32 px proxy RegionViT-style stages see 8×8 to 1×1 local maps under a window of 7. Padding
makes every region 1 + 49 tokens, through attention and the MLP, whatever the map holds. Prints the
forward + backward time of both per map size, their ratio, and the same for a training step of the
default search's slowest proxy (trial 00003 of the 2026-12-02 run: CMT stem, MViT pooling,
Refiner, gnConv, and R2L blocks on the 1×1 last stage).

Run:  python benchmarks/regional_window.py [--batch 64] [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Iterator

import torch

from archbench import ArchSpec
from archbench.blocks.regional import R2LBlock
from archbench.builder import build

# The proxy (width and depth × 0.5, 32 px) of the default search's slowest trial.
SLOWEST_PROXY = {
    "name": "hybrid_vit-a003ec1f-proxy", "layout": "pyramid", "input": {"img_size": 32, "in_chans": 3, "num_classes": 10},
    "stem": {"type": "cmt", "params": {"channels": 8}},
    "stages": [
        {"depth": 1, "dim": 48, "block": {"type": "pool_attention", "params": {
            "heads": 2, "kernel": 3, "mlp_ratio": 3.0, "mode": "avg", "qkv_bias": True, "rel_pos": True, "residual_pooling": True, "stride_kv": 4}}},
        {"depth": 1, "dim": 96, "block": {"type": "refiner", "params": {"expansion": 4, "heads": 3, "kernel": 3, "mlp_ratio": 4.0, "qkv_bias": True, "share": True}},
         "downsample": {"type": "pvt", "params": {"grid": 28, "pos_embed": True}}},
        {"depth": 4, "dim": 96, "block": {"type": "gnconv", "params": {
            "filter": "dwconv", "kernel": 7, "layer_scale": 1e-6, "mlp_ratio": 8.0, "order": 5, "scale": 1 / 3}},
         "downsample": {"type": "pvt", "params": {"grid": 14, "pos_embed": True}}},
        {"depth": 2, "dim": 384, "block": {"type": "regional", "params": {"heads": 24, "mlp_ratio": 8.0, "qkv_bias": True, "window": 7}},
         "downsample": {"type": "patch_merging", "params": {}}},
    ],
    "head": {"type": "cmt", "params": {"act": "silu", "drop": 0.1, "fc_dim": 640}},
}


@contextmanager
def padded_windows() -> Iterator[None]:
    """Every R2L block pads each region to the whole window, as the release does."""
    cropped = R2LBlock.window_extent
    R2LBlock.window_extent = lambda self, size, grid: (self.window, self.window)  # type: ignore[method-assign]
    try:
        yield
    finally:
        R2LBlock.window_extent = cropped  # type: ignore[method-assign]


def seconds_per_step(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up: allocator, kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def both(step: Callable[[], None], repeats: int) -> tuple[float, float]:
    ours = seconds_per_step(step, repeats)
    with padded_windows():
        padded = seconds_per_step(step, repeats)
    return ours, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"R2L block fwd+bwd, batch {args.batch}, {args.threads} thread(s); median of {args.repeats}")
    print(f"{'local map':>10} {'dim':>4} {'cropped ms':>11} {'padded ms':>10} {'speed-up':>9}")
    for side, dim, heads in ((8, 48, 2), (4, 96, 3), (2, 192, 6), (1, 384, 12)):
        block = R2LBlock(dim, heads, 7, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0)
        grid = -(-side // 7)
        local = torch.randn(args.batch, dim, side, side, requires_grad=True)
        regional = torch.randn(args.batch, dim, grid, grid, requires_grad=True)

        def step() -> None:
            out_local, out_regional = block((local, regional))
            (out_local.sum() + out_regional.sum()).backward()

        ours, padded = both(step, args.repeats)
        print(f"{f'{side}×{side}':>10} {dim:>4} {1000 * ours:>11.1f} {1000 * padded:>10.1f} {padded / ours:>8.1f}×")

    model = build(ArchSpec.from_dict(SLOWEST_PROXY))
    images, labels = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))

    def train_step() -> None:
        torch.nn.functional.cross_entropy(model(images), labels).backward()

    ours, padded = both(train_step, args.repeats)
    print(f"slowest default-search proxy, one step: cropped {1000 * ours:.0f} ms, padded {1000 * padded:.0f} ms, {padded / ours:.1f}×")


if __name__ == "__main__":
    main()
