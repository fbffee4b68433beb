"""PVT v1 presets (Wang et al., "Pyramid Vision Transformer", ICCV 2021).

Configs from whai362/PVT classification/pvt.py: patch 4, spatial-reduction attention, per-stage
learned position embeddings; the pyramid "mhsa" block with ``sr_ratio`` is PVT's block.
"""
from __future__ import annotations

from typing import Any

from archbench.zoo import Published, pyramid, register_preset

DIMS = [64, 128, 320, 512]
HEADS = [1, 2, 5, 8]
MLP_RATIOS = [8.0, 8.0, 4.0, 4.0]
SR_RATIOS = [8, 4, 2, 1]


def pvt(depths: list[int], img_size: int = 224) -> dict[str, Any]:
    grid = img_size // 4
    arch = pyramid(
        stem={"type": "pvt", "params": {"patch_size": 4, "grid": grid}},
        dims=DIMS,
        depths=depths,
        block=lambda i: {
            "type": "mhsa",
            "params": {"heads": HEADS[i], "mlp_ratio": MLP_RATIOS[i], "sr_ratio": SR_RATIOS[i], "qkv_bias": True},
        },
        downsample={"type": "pvt"},
        # The release classifies its stage-4 class token; pyramid blocks carry maps only, so we pool.
        head={"type": "linear", "params": {"pool": "avg", "norm": "layernorm", "norm_eps": 1e-6}},
        img_size=img_size,
    )
    for i, stage in enumerate(arch["stages"][1:], start=1):
        stage["downsample"] = {"type": "pvt", "params": {"grid": grid >> i}}
    return arch


_SRC = "whai362/PVT README.md (params, top-1); GFLOPs: {}"
_NOTE = (
    "MACs (get_flops.py: mmcv + analytic attention term); release has a stage-4 class token "
    "(+1,024 params, +1 token in stage 4) that the preset replaces by average pooling"
)

register_preset(
    "pvt_ti",
    lambda: pvt([2, 2, 2, 2]),
    Published("13.2", "1.9", _SRC.format("awesome-comparison (MACs column)"), "75.1", _NOTE),
    family="PVT",
)
register_preset(
    "pvt_s",
    lambda: pvt([3, 4, 6, 3]),
    Published("24.5", "3.8", _SRC.format("Focal Transformer README; Han et al. survey copy"), "79.8", _NOTE),
    family="PVT",
)
