"""ConvNeXt preset (Liu et al., "A ConvNet for the 2020s", CVPR 2022): patch-4 stem with LN,
LN + 2×2/2 conv downsampling, 7×7 depthwise blocks, LN + average-pooled linear head.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset


def convnext(dims: list[int], depths: list[int]) -> dict[str, Any]:
    return pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=dims,
        depths=depths,
        block=lambda i: {"type": "convnext", "params": {"kernel": 7, "mlp_ratio": 4.0, "layer_scale": 1e-6}},
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "pre"}},
        # timm pools then normalises; norm-then-pool here has the same parameters and MACs.
        head={"type": "linear", "params": {"pool": "avg", "norm": "layernorm", "norm_eps": 1e-6}},
    )


register_preset(
    "convnext_t",
    lambda: convnext([96, 192, 384, 768], [3, 3, 9, 3]),
    Published(
        "28.59",
        "4.47",
        "facebookresearch/ConvNeXt README; timm benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv",
        "82.1",
        "params/GMACs from timm; paper Table 1: 28M, 4.5G FLOPs",
    ),
    timm_name="convnext_tiny",
    family="ConvNeXt",
)
