"""Hire-MLP presets (Guo et al., "Hire-MLP: Vision MLP via Hierarchical Rearrangement", CVPR 2022);
configs and figures from the official release (ggjy/Hire-Wave-MLP.pytorch).
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

REGIONS = [4, 3, 3, 2]
STEP_STRIDES = [2, 2, 3, 2]
STEP_DILATIONS = [2, 2, 1, 1]


def hire_mlp(dims: list[int], depths: list[int]) -> dict[str, Any]:
    """7×7/4 conv + BN + ReLU stem, 3×3/2 conv + BN + ReLU between stages, BN + linear head."""

    def block(stage: int) -> dict[str, Any]:
        return {
            "type": "hire_mlp",
            "params": {"region": REGIONS[stage], "step_stride": STEP_STRIDES[stage], "step_dilation": STEP_DILATIONS[stage]},
        }

    return pyramid(
        stem={"type": "overlap", "params": {"kernel": 7, "stride": 4, "norm": "batchnorm", "act": "relu"}},
        dims=dims,
        depths=depths,
        block=block,
        downsample={"type": "conv", "params": {"kernel": 3, "norm": "batchnorm", "norm_position": "post", "act": "relu"}},
        head={"type": "linear", "params": {"norm": "batchnorm"}},
    )


_SRC = "ggjy/Hire-Wave-MLP.pytorch@7ef7ddd784:README.md, mlp_based/hire_mlp.py"
_NOTE = "GFLOPs counted as MACs by torchprofile profile_macs in the release's train.py (BN uncounted, elementwise mul counted)"
_SMALL = [64, 128, 320, 512]

register_preset("hire_mlp_t", lambda: hire_mlp(_SMALL, [2, 2, 4, 2]), Published("18", "2.1", _SRC, "79.7", _NOTE), family="Hire-MLP")
register_preset("hire_mlp_s", lambda: hire_mlp(_SMALL, [3, 4, 10, 3]), Published("33", "4.2", _SRC, "82.1", _NOTE), family="Hire-MLP")
register_preset("hire_mlp_b", lambda: hire_mlp(_SMALL, [4, 6, 24, 3]), Published("58", "8.1", _SRC, "83.2", _NOTE), family="Hire-MLP")
register_preset(
    "hire_mlp_l",
    lambda: hire_mlp([96, 192, 384, 768], [4, 6, 24, 3]),
    Published("96", "13.4", _SRC, "83.8", _NOTE + "; no checkpoint released"),
    family="Hire-MLP",
)
