"""Refiner-ViT presets (Zhou et al., "Refiner: Refining Self-attention for Vision Transformers",
arXiv 2106.03714); configs from zhoudaquan/Refiner_ViT's models/refined_transformer.py, figures from its README.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset


def refiner_vit(dim: int, depth: int, heads: int) -> dict[str, Any]:
    """Isotropic trunk: the 3-conv stem (stride 16), class token and learned position embedding,
    ``depth`` refiner blocks in the released alternation (computing / shared map), MLP ratio 3,
    qkv bias, LayerNorm eps 1e-6, class-token linear head."""
    return {
        "layout": "isotropic",
        "input": {"img_size": 224},
        "stem": {"type": "refiner_cnn"},
        "stages": [
            {
                "depth": depth,
                "dim": dim,
                "block": {"type": "refiner", "params": {"heads": heads, "mlp_ratio": 3.0, "qkv_bias": True, "share": True}},
            }
        ],
        "tokens": {"cls_token": True, "pos_embed": True},
        "head": {"type": "linear", "params": {"pool": "cls", "norm_eps": 1e-6}},
    }


_SRC = "zhoudaquan/Refiner_ViT@b3e8cb0c41:README.md (params only; no FLOPs published)"
_AUX = (
    "Measured without the token-labelling aux head (return_dense off, as refiner_s/m.yaml): "
    "S 25.02M, M 55.03M, L 80.64M; with it (+D*1000+1000, on in refiner_l.yaml and *_relabel.yaml) "
    "S 25.41M, M 55.45M, L 81.15M. Both readings round to the README's 25/55/81 and fall inside the "
    "tolerance, so the README does not tell them apart; the presets are the plain classifier (no aux head)."
)

for _name, _dim, _depth, _heads, _params, _top1 in (
    ("refiner_vit_s", 384, 16, 12, "25", "83.6"),
    ("refiner_vit_m", 420, 32, 12, "55", "84.6"),
    ("refiner_vit_l", 512, 32, 16, "81", "84.9"),
):
    register_preset(
        _name,
        lambda d=_dim, n=_depth, h=_heads: refiner_vit(d, n, h),
        Published(_params, None, _SRC, _top1, _AUX),
        family="Refiner",
    )
