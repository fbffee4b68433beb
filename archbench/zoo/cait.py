"""CaiT preset (Touvron et al., "Going deeper with Image Transformers", ICCV 2021).

XXS-24: patch 16, D=192, 24 talking-heads blocks with LayerScale 1e-5, then 2 class-attention blocks.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset


def cait(dim: int, depth: int, heads: int, layer_scale: float, img_size: int = 224) -> dict[str, Any]:
    return {
        "layout": "isotropic",
        "input": {"img_size": img_size},
        "stem": {"type": "patchify", "params": {"patch_size": 16}},
        "stages": [
            {
                "depth": depth,
                "dim": dim,
                "block": {"type": "talking_heads", "params": {"heads": heads, "layer_scale": layer_scale}},
            }
        ],
        # The class token joins only in the head (class attention), never in the trunk.
        "tokens": {"cls_token": False, "pos_embed": True},
        "head": {"type": "class_attention", "params": {"depth": 2, "heads": heads, "layer_scale": layer_scale}},
    }


register_preset(
    "cait_xxs24",
    lambda: cait(192, 24, 4, 1e-5),
    Published(
        "11.96",
        "2.53",
        "timm timm/models/cait.py cait_xxs24_224 and its results CSVs; facebookresearch/deit cait_models.py",
        "78.4",
        "params/GMACs from timm; top-1 of the distilled weights (.fb_dist_in1k); the paper's row is n/f",
    ),
    timm_name="cait_xxs24_224",
    family="CaiT",
)
