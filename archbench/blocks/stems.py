"""Generic stems: ViT patchify (Dosovitskiy et al., 2021), overlapping conv (PVTv2/Hire-MLP/FCViT)
and CMT's 3×3 conv stem (Guo et al., CMT, CVPR 2022). Paper-specific stems live with their family.
"""
from __future__ import annotations

import torch
from timm.layers import LayerNorm2d, get_act_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import ACT_NAMES, ACTS, NORM_2D_NAMES, NORMS_2D, create_norm
from archbench.registry import Param, register


class ConvStem(nn.Module):
    """One strided convolution, then an optional norm and activation; NCHW in and out.

    ``norm_layer`` / ``act_layer`` are timm layer types or names (None: no norm / activation).
    """

    def __init__(
        self,
        in_chans: int,
        out_dim: int,
        *,
        kernel: int,
        stride: int,
        padding: int,
        norm_layer: LayerType | None = None,
        act_layer: LayerType | None = None,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, out_dim, kernel, stride=stride, padding=padding)
        self.norm = create_norm(norm_layer, out_dim)
        self.act = (get_act_layer(act_layer) or nn.Identity)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.proj(x)))


@register(
    "stem",
    "patchify",
    params=(
        Param("patch_size", int, 16, min=1, help="kernel = stride of the patch projection"),
        Param("norm", str, "none", choices=NORMS_2D, help="norm after the projection (Swin: layernorm)"),
    ),
    layouts=("pyramid", "isotropic"),
    paper="ViT, Dosovitskiy et al., ICLR 2021",
)
def patchify(in_chans: int, out_dim: int, *, patch_size: int, norm: str) -> nn.Module:
    return ConvStem(in_chans, out_dim, kernel=patch_size, stride=patch_size, padding=0, norm_layer=NORM_2D_NAMES[norm])


@register(
    "stem",
    "overlap",
    params=(
        Param("kernel", int, 7, min=1),
        Param("stride", int, 4, min=1),
        Param("padding", int, -1, min=-1, help="-1: (kernel - stride + 1) // 2, which keeps H/stride exactly"),
        Param("norm", str, "layernorm", choices=NORMS_2D),
        Param("act", str, "none", choices=ACTS),
    ),
    layouts=("pyramid", "isotropic"),
    paper="PVTv2, Wang et al., CVMJ 2022 (overlapping patch embedding)",
)
def overlap(in_chans: int, out_dim: int, *, kernel: int, stride: int, padding: int, norm: str, act: str) -> nn.Module:
    # Automatic padding: 7/4 -> 2 (Hire-MLP), 3/2 -> 1. FCViT's release pads 7/4 with 3 (same size
    # at multiples of 4, windows one pixel apart), so its presets set it explicitly.
    padding = (kernel - stride + 1) // 2 if padding < 0 else padding
    return ConvStem(
        in_chans, out_dim, kernel=kernel, stride=stride, padding=padding, norm_layer=NORM_2D_NAMES[norm], act_layer=ACT_NAMES[act]
    )


class CMTStem(nn.Module):
    """CMT's stem: 3×3/2 conv then two 3×3 convs (GELU, BN), then a 2×2/2 patch embedding + LN."""

    def __init__(
        self,
        in_chans: int,
        out_dim: int,
        channels: int,
        *,
        act_layer: LayerType = nn.GELU,
        norm_layer: LayerType = nn.BatchNorm2d,
        embed_norm_layer: LayerType = LayerNorm2d,
    ) -> None:
        super().__init__()
        act_layer = get_act_layer(act_layer)
        self.stride = 4
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [
                nn.Conv2d(in_chans if i == 0 else channels, channels, 3, stride=2 if i == 0 else 1, padding=1),
                act_layer(),
                create_norm(norm_layer, channels),
            ]
        self.convs = nn.Sequential(*layers)
        self.patch_embed = nn.Conv2d(channels, out_dim, 2, stride=2)
        self.norm = create_norm(embed_norm_layer, out_dim, eps=1e-5)  # the release's nn.LayerNorm default eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.patch_embed(self.convs(x)))


@register(
    "stem",
    "cmt",
    params=(Param("channels", int, 32, min=1, help="width of the 3×3 convs (Ti/XS 16, S 32, B 38)"),),
    layouts=("pyramid", "isotropic"),
    paper="CMT: Convolutional Neural Networks Meet Vision Transformers, Guo et al., CVPR 2022",
)
def cmt(in_chans: int, out_dim: int, *, channels: int) -> nn.Module:
    return CMTStem(in_chans, out_dim, channels)
