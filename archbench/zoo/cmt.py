"""CMT presets (Guo et al., "CMT: Convolutional Neural Networks Meet Vision Transformers", CVPR 2022).

Configs from the release (huawei-noah/Efficient-AI-Backbones cmt_pytorch/cmt.py, = ggjy/CMT.pytorch).
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

SR_RATIOS = [8, 4, 2, 1]
HEADS = [1, 2, 4, 8]


def cmt(
    dims: list[int], depths: list[int], stem_channels: int, mlp_ratio: float, img_size: int, drop: float = 0.1
) -> dict[str, Any]:
    return pyramid(
        stem={"type": "cmt", "params": {"channels": stem_channels}},
        dims=dims,
        depths=depths,
        block=lambda i: {
            "type": "cmt",
            "params": {"heads": HEADS[i], "sr_ratio": SR_RATIOS[i], "mlp_ratio": mlp_ratio},
        },
        # The release's 2×2/2 patch embedding + LN between stages.
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "post"}},
        head={"type": "cmt", "params": {"fc_dim": 1280, "act": "silu", "drop": drop}},
        img_size=img_size,
    )


_REPO = "ggjy/CMT.pytorch README.md (top-1, resolution)"
_KECAM = _REPO + "; params/GFLOPs computed by leondgarse/keras_cv_attention_models README (third-party)"
_SURVEY = _REPO + "; params/GFLOPs from a copy of Han et al., 'A Survey on Vision Transformer', Table 1 (third-party)"
_MACS = "GFLOPs are MACs (the release's train.py uses torchprofile profile_macs)"

register_preset(
    "cmt_ti",
    lambda: cmt([46, 92, 184, 368], [2, 2, 10, 2], 16, 3.6, img_size=160),
    Published("9.5", "0.65", _KECAM, "79.0", f"{_MACS}; kecam's own count, not the authors'"),
    family="CMT",
)
register_preset(
    "cmt_xs",
    lambda: cmt([52, 104, 208, 416], [3, 3, 12, 3], 16, 3.77, img_size=192),
    Published("15.2", "1.58", _KECAM, "81.8", f"{_MACS}; kecam's own count, not the authors'"),
    family="CMT",
)
register_preset(
    "cmt_s",
    lambda: cmt([64, 128, 256, 512], [3, 3, 16, 3], 32, 4.0, img_size=224),
    Published(
        "25.1",
        "4.0",
        _SURVEY,
        "83.5",
        f"{_MACS}; the release's cmt_s config counts 26.26M params (kecam prints 25.1M but 4.09G; "
        "mindcv counts 26.09M without the relative biases): 25.1 does not match the released code",
        deviation="params: the released CMT-S config (R=4, stem 32, dims 64-512, depths 3/3/16/3) has 26.26M "
        "parameters, counted by hand block by block; the paper's 25.1M is not reachable from it",
    ),
    family="CMT",
)
register_preset(
    "cmt_b",
    lambda: cmt([76, 152, 304, 608], [4, 4, 20, 4], 38, 4.0, img_size=256, drop=0.3),
    Published("45.7", "9.3", _SURVEY, "84.5", f"{_MACS}; kecam counts 45.7M / 9.42G; PMC survey page: 45.7M / 9.3G"),
    family="CMT",
)
