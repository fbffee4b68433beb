"""DeiT presets (Touvron et al., "Training data-efficient image transformers", ICML 2021).

Patch 16, depth 12, MLP ratio 4, qkv bias, class token; figures from the paper and timm's CSVs.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset


def deit(dim: int, heads: int, depth: int = 12) -> dict[str, Any]:
    return {
        "layout": "isotropic",
        "input": {"img_size": 224},
        "stem": {"type": "patchify", "params": {"patch_size": 16}},
        "stages": [{"depth": depth, "dim": dim, "block": {"type": "mhsa", "params": {"heads": heads}}}],
        "tokens": {"cls_token": True, "pos_embed": True},
        "head": {"type": "linear", "params": {"pool": "cls", "norm_eps": 1e-6}},
    }


_SRC = "facebookresearch/deit README_deit.md; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv"
register_preset("deit_ti", lambda: deit(192, 3), Published("5.72", "1.26", _SRC, "72.2", "params/GMACs from timm (paper: 5M)"), timm_name="deit_tiny_patch16_224", family="DeiT")
register_preset("deit_s", lambda: deit(384, 6), Published("22.05", "4.61", _SRC, "79.8", "params/GMACs from timm (paper: 22M, 4.6G)"), timm_name="deit_small_patch16_224", family="DeiT")
register_preset("deit_b", lambda: deit(768, 12), Published("86.57", "17.58", _SRC, "81.8", "params/GMACs from timm (paper: 86M, 17.5G)"), timm_name="deit_base_patch16_224", family="DeiT")
