"""FCViT presets (Ma et al., "A Close Look at Spatial Modeling: From Attention to Convolution",
arXiv 2212.12552); configs from ma-xu/FCViT's models/fcvit.py, parameter counts from its README.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

MLP_RATIOS = [8, 8, 4, 4]


def fcvit(dims: list[int], depths: list[int]) -> dict[str, Any]:
    """MetaFormer pyramid: 7×7/4 conv + BN stem, 3×3/2 conv + BN between stages, FCViT blocks
    (two 11×11 token mixes with global context, 8 groups, competing bottleneck), MLP ratios [8, 8, 4, 4]."""
    return pyramid(
        stem={"type": "overlap", "params": {"kernel": 7, "stride": 4, "padding": 3, "norm": "batchnorm"}},
        dims=dims,
        depths=depths,
        block=lambda stage: {"type": "fcvit", "params": {"mlp_ratio": float(MLP_RATIOS[stage])}},
        downsample={"type": "conv", "params": {"kernel": 3, "norm": "batchnorm", "norm_position": "post"}},
        head={"type": "linear"},
    )


_SRC = "ma-xu/FCViT@77e5a9d15d:README.md (params only; FLOPs n/f)"
_NOTE = (
    "The released config (11x11 mixing kernels) counts 4.78/14.70/26.96/51.48M, 4-5% above the README's "
    "4.6/14/25.7/49.1M; 5x5 + 7x7 kernels (models/fcvit.py's global defaults) would give 4.49/14.14/25.84/49.24M, "
    "so the README likely counted an earlier config. Presets follow the release (stem padding 3 included). "
    "Not expressible: its "
    "head norm is GroupNorm(1) over C, H, W (the 'linear' head's LayerNorm over C has the same parameter count)."
)
_DEVIATION = (
    "params: the released fcvit_* configs (two 11x11 depthwise mixes per block) have 4.78/14.70/26.96/51.48M "
    "parameters, equal to an instantiation of the release's models/fcvit.py; the README's figures are not "
    "reachable from it"
)
_BASE = [64, 128, 320, 512]

for _name, _dims, _depths, _params, _top1 in (
    ("fcvit_tiny", [32, 64, 160, 320], [3, 3, 5, 2], "4.6", "74.9"),
    ("fcvit_b12", _BASE, [2, 2, 6, 2], "14", "80.9"),
    ("fcvit_b24", _BASE, [4, 4, 12, 4], "25.7", "82.5"),
    ("fcvit_b48", _BASE, [8, 8, 24, 8], "49.1", "83.6"),
):
    register_preset(
        _name,
        lambda d=_dims, n=_depths: fcvit(d, n),
        Published(_params, None, _SRC, _top1, _NOTE, deviation=_DEVIATION),
        family="FCViT",
    )
