"""HorNet presets (Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive
Gated Convolutions", NeurIPS 2022); figures from mmpretrain's HorNet README (README rounding in notes).
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

ORDERS = [2, 3, 4, 5]


def hornet(base_dim: int, global_filter: bool) -> dict[str, Any]:
    """ConvNeXt-like layout: 4×4 patchify + LN, LN + 2×2/2 conv between stages, depths [2, 3, 18, 2];
    the GF variants use the global-local filter in stages 3 and 4."""

    def block(stage: int) -> dict[str, Any]:
        params: dict[str, Any] = {"order": ORDERS[stage]}
        if global_filter and stage >= 2:
            params["filter"] = "gf"
        return {"type": "gnconv", "params": params}

    return pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[base_dim, 2 * base_dim, 4 * base_dim, 8 * base_dim],
        depths=[2, 3, 18, 2],
        block=block,
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "pre"}},
        head={"type": "linear", "params": {"norm_eps": 1e-6}},
    )


_SRC = "open-mmlab/mmpretrain@ee7f2e8850:configs/hornet/README.md; raoyongming/HorNet@ac9e210589:README.md"
_FLOPS = "MACs by fvcore + an rfft handler (HorNet calc_flops.py)"

for _name, _dim, _gf, _params, _macs, _top1, _readme in (
    ("hornet_t_7x7", 64, False, "22.41", "3.98", "82.84", "22M, 4.0G, 82.8"),
    ("hornet_t_gf", 64, True, "22.99", "3.90", "82.98", "23M, 3.9G, 83.0"),
    ("hornet_s_7x7", 96, False, "49.53", "8.83", "83.79", "50M, 8.8G, 83.8"),
    ("hornet_s_gf", 96, True, "50.40", "8.71", "83.98", "50M, 8.7G, 84.0"),
    ("hornet_b_7x7", 128, False, "87.26", "15.58", "84.24", "87M, 15.6G, 84.2"),
    ("hornet_b_gf", 128, True, "88.42", "15.42", "84.32", "88M, 15.5G, 84.3"),
):
    register_preset(
        _name,
        lambda d=_dim, g=_gf: hornet(d, g),
        Published(_params, _macs, _SRC, _top1, f"HorNet README: {_readme}; {_FLOPS}"),
        family="HorNet",
    )
