"""Downsampling between pyramid stages: strided conv with a norm (ConvNeXt/HorNet/PVT/Hire-MLP) and
Swin's patch merging (Liu et al., ICCV 2021). Each halves H and W and maps C_in to C_out.
"""
from __future__ import annotations

import torch
from timm.layers import get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import ACT_NAMES, ACTS, NORM_2D_NAMES, NORMS_2D, create_norm
from archbench.registry import Param, register


class ConvDownsample(nn.Module):
    """[norm] → conv k×k / 2 → [norm] → [act]; ``norm_position`` says which side the norm sits.

    ``norm_layer`` / ``act_layer`` are timm layer types or names (None: no norm / activation).
    """

    stride = 2

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kernel: int,
        norm_layer: LayerType | None = None,
        norm_position: str = "pre",
        act_layer: LayerType | None = None,
    ) -> None:
        super().__init__()
        self.pre_norm = create_norm(norm_layer if norm_position == "pre" else None, in_dim)
        self.conv = nn.Conv2d(in_dim, out_dim, kernel, stride=2, padding=(kernel - 1) // 2)
        self.post_norm = create_norm(norm_layer if norm_position == "post" else None, out_dim)
        self.act = (get_act_layer(act_layer) or nn.Identity)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.post_norm(self.conv(self.pre_norm(x))))


@register(
    "downsample",
    "conv",
    params=(
        Param("kernel", int, 2, min=2, help="2 (ConvNeXt, HorNet, PVT) or 3 (Hire-MLP, FCViT, conv embed)"),
        Param("norm", str, "layernorm", choices=NORMS_2D),
        Param("norm_position", str, "pre", choices=("pre", "post")),
        Param("act", str, "none", choices=ACTS),
    ),
    paper="ConvNeXt, Liu et al., CVPR 2022 (LN + 2×2/2 conv); PVT, Wang et al., ICCV 2021",
)
def conv(in_dim: int, out_dim: int, *, kernel: int, norm: str, norm_position: str, act: str) -> nn.Module:
    return ConvDownsample(
        in_dim, out_dim, kernel=kernel, norm_layer=NORM_2D_NAMES[norm], norm_position=norm_position, act_layer=ACT_NAMES[act]
    )


class PatchMerging(nn.Module):
    """Swin's patch merging: concatenate each 2×2 neighbourhood (4C), LayerNorm, Linear 4C → C_out.

    Odd sizes are zero-padded first, as in Swin, so any resolution the stride allows works.
    """

    stride = 2

    def __init__(self, in_dim: int, out_dim: int, norm_layer: LayerType = nn.LayerNorm) -> None:
        super().__init__()
        self.norm = get_norm_layer(norm_layer)(4 * in_dim)
        self.reduction = nn.Linear(4 * in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        if H % 2 or W % 2:
            x = nn.functional.pad(x, (0, W % 2, 0, H % 2))
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        # timm's order of the 2×2 neighbours (x0, x1, x2, x3) so weights port one to one.
        x = x.reshape(B, x.shape[1] // 2, 2, x.shape[2] // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        x = self.reduction(self.norm(x))  # (B, H/2, W/2, C_out)
        return x.permute(0, 3, 1, 2)


@register("downsample", "patch_merging", paper="Swin Transformer, Liu et al., ICCV 2021")
def patch_merging(in_dim: int, out_dim: int) -> nn.Module:
    return PatchMerging(in_dim, out_dim)
