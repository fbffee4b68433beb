"""ConViT presets (d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional
Inductive Biases", ICML 2021): 10 GPSA blocks, then the class token joins and 2 plain SA blocks.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset


def convit(heads: int, head_dim: int = 48, local_blocks: int = 10, depth: int = 12) -> dict[str, Any]:
    dim = heads * head_dim
    return {
        "layout": "isotropic",
        "input": {"img_size": 224},
        "stem": {"type": "patchify", "params": {"patch_size": 16}},
        "stages": [
            {"depth": local_blocks, "dim": dim, "block": {"type": "gpsa", "params": {"heads": heads, "locality_strength": 1.0}}},
            {"depth": depth - local_blocks, "dim": dim, "block": {"type": "mhsa", "params": {"heads": heads, "qkv_bias": False}}},
        ],
        "tokens": {"cls_token": True, "pos_embed": True, "cls_token_stage": 1},
        "head": {"type": "linear", "params": {"pool": "cls", "norm_eps": 1e-6}},
    }


_SRC = "facebookresearch/convit README/models.py; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv"
_NOTE = "params/GMACs from timm; paper Table 1: {} params, {} FLOPs"
register_preset(
    "convit_ti",
    lambda: convit(4),
    Published("5.71", "1.26", _SRC, "73.1", _NOTE.format("6M", "1G")),
    timm_name="convit_tiny",
    family="ConViT",
)
register_preset(
    "convit_s",
    lambda: convit(9),
    Published("27.78", "5.76", _SRC, "81.3", _NOTE.format("27M", "5.4G")),
    timm_name="convit_small",
    family="ConViT",
)
register_preset(
    "convit_b",
    lambda: convit(16),
    Published("86.54", "17.52", _SRC, "82.4", _NOTE.format("86M", "17G")),
    timm_name="convit_base",
    family="ConViT",
)
