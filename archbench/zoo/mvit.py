"""MViTv2 presets (Li et al., "MViTv2: Improved Multiscale Vision Transformers for Classification and
Detection", CVPR 2022): conv 7×7/4 stem, pooling attention, stages opened by a pooling transition.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, register_preset

# Key/value strides per stage: the adaptive 4×4 of the release, divided by each stage's query stride.
STRIDE_KV = [4, 2, 1, 1]


def mvitv2(depths: list[int], dim: int = 96, heads: int = 1, img_size: int = 224) -> dict[str, Any]:
    """``depths`` as the paper counts them; each later stage's first block is its ``pool_attention``
    downsampling layer (queries pooled by 2, channels and heads doubled), so the stage keeps
    ``depth - 1`` blocks. Width and heads double per stage (96 and 1 for T/S/B)."""

    def params(i: int) -> dict[str, Any]:
        return {"heads": heads << i, "stride_kv": STRIDE_KV[i]}

    stages = []
    for i, depth in enumerate(depths):
        down = None if i == 0 else {"type": "pool_attention", "params": {**params(i), "grid": img_size // (4 << i)}}
        stages.append({"depth": depth - (i > 0), "dim": dim << i, "block": {"type": "pool_attention", "params": params(i)}, "downsample": down})
    return {
        "layout": "pyramid",
        "input": {"img_size": img_size, "in_chans": 3, "num_classes": 1000},
        "stem": {"type": "overlap", "params": {"kernel": 7, "stride": 4, "padding": 3, "norm": "none"}},
        "stages": stages,
        "head": {"type": "linear", "params": {"pool": "avg", "norm": "layernorm", "norm_eps": 1e-6}},
    }


_SRC = "facebookresearch/mvit README.md (ImageNet-1K table) and configs/MViTv2_{}.yaml; timm mvitv2.py"
_NOTE = "#params/FLOPs (MACs) as the README prints them; parameters equal timm {} exactly"
register_preset(
    "mvitv2_t",
    lambda: mvitv2([1, 2, 5, 2]),
    Published("24", "4.7", _SRC.format("T"), "82.3", _NOTE.format("mvitv2_tiny")),
    timm_name="mvitv2_tiny",
    family="MViTv2",
)
register_preset(
    "mvitv2_s",
    lambda: mvitv2([1, 2, 11, 2]),
    Published("35", "7.0", _SRC.format("S"), "83.6", _NOTE.format("mvitv2_small")),
    timm_name="mvitv2_small",
    family="MViTv2",
)
register_preset(
    "mvitv2_b",
    lambda: mvitv2([2, 3, 16, 3]),
    Published("52", "10.2", _SRC.format("B"), "84.4", _NOTE.format("mvitv2_base")),
    timm_name="mvitv2_base",
    family="MViTv2",
)
