"""All-MLP presets: MLP-Mixer B/16 (Tolstikhin et al., NeurIPS 2021) and ResMLP-S12 (Touvron et
al., TPAMI 2022); patch 16, no class token and no position embedding, average-pooled head.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset


def mlp_trunk(dim: int, depth: int, block: dict[str, Any], head_norm: str, head_eps: float) -> dict[str, Any]:
    return {
        "layout": "isotropic",
        "input": {"img_size": 224},
        "stem": {"type": "patchify", "params": {"patch_size": 16}},
        "stages": [{"depth": depth, "dim": dim, "block": block}],
        "tokens": {"cls_token": False, "pos_embed": False},
        "head": {"type": "linear", "params": {"pool": "avg", "norm": head_norm, "norm_eps": head_eps}},
    }


register_preset(
    "mixer_b16",
    lambda: mlp_trunk(768, 12, {"type": "mixer", "params": {"tokens_mlp_ratio": 0.5, "mlp_ratio": 4.0}}, "layernorm", 1e-6),
    Published(
        "59.88",
        "12.62",
        "google-research/vision_transformer configs/models.py; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv",
        "76.44",
        "params/GMACs from timm; mmpretrain 59.88M / 12.61G, kecam 59.9M / 12.64G (IN-1k only top-1)",
    ),
    timm_name="mixer_b16_224",
    family="MLP-Mixer",
)
register_preset(
    "resmlp_s12",
    lambda: mlp_trunk(384, 12, {"type": "resmlp", "params": {"mlp_ratio": 4.0, "layer_scale": 0.1}}, "affine", 1e-6),
    Published(
        "15.35",
        "3.01",
        "facebookresearch/deit README_resmlp.md, resmlp_models.py; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv",
        "76.6",
        "params/GMACs from timm; deit README_resmlp: 15M, 3G (77.8 top-1 distilled)",
    ),
    timm_name="resmlp_12_224",
    family="ResMLP",
)
