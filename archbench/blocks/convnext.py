"""ConvNeXt's block: depthwise k×k conv, LayerNorm, 4× MLP and layer scale, NCHW in and out
(Liu et al., "A ConvNet for the 2020s", CVPR 2022); timm's ConvNeXtBlock as is.
"""
from __future__ import annotations

from typing import Any

# ConvNeXtBlock exists only in timm.models (timm.layers has its parts, not the block); used as is,
# so parameters and parity with timm's ConvNeXt stay exactly timm's.
from timm.models.convnext import ConvNeXtBlock
from torch import nn

from archbench.registry import BlockContext, Param, register


def _odd_kernel(params: dict[str, Any], dim: int) -> str | None:
    # An even depthwise kernel has no symmetric padding that keeps H, W for the residual.
    return None if params["kernel"] % 2 else f"kernel must be odd, got {params['kernel']}"


@register(
    "block",
    "convnext",
    params=(
        Param("kernel", int, 7, min=1, help="depthwise kernel (odd: 'same' padding)"),
        Param("mlp_ratio", float, 4.0, min=0.25, help="inverted-bottleneck expansion"),
        Param("layer_scale", float, 1e-6, min=0.0, help="LayerScale init; 0 disables it"),
    ),
    layouts=("pyramid",),
    paper="ConvNeXt, Liu et al., CVPR 2022",
    check=_odd_kernel,
)
def convnext(ctx: BlockContext, *, kernel: int, mlp_ratio: float, layer_scale: float) -> nn.Module:
    # A plain conv block: padding k // 2 keeps any H, W, so no resolution logic is needed.
    return ConvNeXtBlock(
        ctx.dim,
        kernel_size=kernel,
        mlp_ratio=mlp_ratio,
        ls_init_value=layer_scale or None,
        drop_path=ctx.drop_path,
    )
