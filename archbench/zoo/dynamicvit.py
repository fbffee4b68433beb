"""DynamicViT presets (Rao et al., "DynamicViT: Efficient Vision Transformers with Dynamic Token
Sparsification", NeurIPS 2021): DeiT trunks pruned at blocks 3, 6 and 9 with keep ratio ρ = 0.7.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset
from archbench.zoo.deit import deit


def dynamicvit_deit(dim: int, heads: int, keep_ratio: float = 0.7) -> dict[str, Any]:
    """The DeiT preset of the same width with its blocks as ``dynamicvit`` blocks (3 locations)."""
    arch = deit(dim, heads)
    arch["stages"][0]["block"] = {"type": "dynamicvit", "params": {"heads": heads, "keep_ratio": keep_ratio, "levels": 3}}
    return arch


_SRC = "raoyongming/DynamicViT README.md (Model Zoo: FLOPs); main.py (pruning_loc [3, 6, 9], keep ρ, ρ², ρ³)"
_NOTE = (
    "GFLOPs (fvcore MACs, calc_flops.py) at inference, where 137, 96 and 67 of the 196 patch tokens stay "
    "after blocks 3, 6, 9; the README prints no parameter count (the three predictors add {}M to DeiT)"
)
register_preset(
    "dynamicvit_deit_s",
    lambda: dynamicvit_deit(384, 6),
    Published(None, "2.9", _SRC, "79.32", _NOTE.format("0.72")),
    family="DynamicViT",
)
register_preset(
    "dynamicvit_deit_b",
    lambda: dynamicvit_deit(768, 12),
    Published(None, "11.4", _SRC, "81.43", _NOTE.format("2.86")),
    family="DynamicViT",
)
