"""Swin Transformer presets (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows", ICCV 2021): patch-4 stem with LN, window 7 attention, patch merging, head dim 32.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset


def swin(dim: int, depths: list[int], heads: list[int], window_size: int = 7) -> dict[str, Any]:
    return pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[dim, 2 * dim, 4 * dim, 8 * dim],
        depths=depths,
        block=lambda i: {"type": "window", "params": {"heads": heads[i], "window_size": window_size}},
        downsample={"type": "patch_merging"},
        head={"type": "linear", "params": {"pool": "avg", "norm": "layernorm"}},
    )


_SRC = "microsoft/Swin-Transformer README + configs/swin; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv"
_NOTE = "params/GMACs from timm; paper Table 1: {} params, {} FLOPs (MACs, analytic flops())"
register_preset(
    "swin_t",
    lambda: swin(96, [2, 2, 6, 2], [3, 6, 12, 24]),
    Published("28.29", "4.51", _SRC, "81.3", _NOTE.format("29M", "4.5G")),
    timm_name="swin_tiny_patch4_window7_224",
    family="Swin",
)
register_preset(
    "swin_s",
    lambda: swin(96, [2, 2, 18, 2], [3, 6, 12, 24]),
    Published("49.61", "8.77", _SRC, "83.0", _NOTE.format("50M", "8.7G")),
    timm_name="swin_small_patch4_window7_224",
    family="Swin",
)
register_preset(
    "swin_b",
    lambda: swin(128, [2, 2, 18, 2], [4, 8, 16, 32]),
    Published("87.77", "15.47", _SRC, "83.5", _NOTE.format("88M", "15.4G")),
    timm_name="swin_base_patch4_window7_224",
    family="Swin",
)
