"""PVT v1's patch embeddings with a learned position embedding per stage (Wang et al., "Pyramid Vision
Transformer", ICCV 2021); its spatial-reduction attention blocks are the pyramid "mhsa" in vit.py.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.registry import Param, register


class PositionalPatchEmbed(nn.Module):
    """Non-overlapping k×k/k conv patch embedding + LN, then a learned absolute position embedding.

    The embedding is learned on a ``grid``×``grid`` map (the stage's size at the architecture's own
    resolution) and resized bilinearly, as the release does, for any other input size.
    """

    def __init__(
        self,
        in_chans: int,
        out_dim: int,
        *,
        patch_size: int,
        grid: int,
        pos_embed: bool,
        # The release's nn.LayerNorm default eps (1e-5), over the channels of the NCHW map.
        norm_layer: LayerType = partial(LayerNorm2d, eps=1e-5),
    ) -> None:
        super().__init__()
        self.stride = patch_size
        self.proj = nn.Conv2d(in_chans, out_dim, patch_size, stride=patch_size)
        self.norm = get_norm_layer(norm_layer)(out_dim)
        self.grid = (grid, grid)
        self.pos_embed = nn.Parameter(torch.zeros(1, out_dim, grid, grid)) if pos_embed else None
        self.init_weights()

    def init_weights(self) -> None:
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)

    def position(self, hw: tuple[int, int]) -> torch.Tensor:
        assert self.pos_embed is not None
        if hw == self.grid:
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=hw, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.proj(x))  # (B, C, H/k, W/k)
        if self.pos_embed is not None:
            x = x + self.position((x.shape[2], x.shape[3]))
        return x


class PositionalDownsample(PositionalPatchEmbed):
    """PVT's 2×2/2 patch embedding between stages, with its own position embedding."""

    stride = 2

    def __init__(self, in_dim: int, out_dim: int, *, grid: int, pos_embed: bool) -> None:
        super().__init__(in_dim, out_dim, patch_size=2, grid=grid, pos_embed=pos_embed)


_PAPER = "PVT: Pyramid Vision Transformer, Wang et al., ICCV 2021"
_GRID_HELP = "side of the map the position embedding is learned at (img_size / total stride)"


@register(
    "stem",
    "pvt",
    params=(
        Param("patch_size", int, 4, min=1, help="kernel = stride of the patch projection"),
        Param("grid", int, min=1, help=_GRID_HELP),
        Param("pos_embed", bool, True, help="add a learned absolute position embedding"),
    ),
    layouts=("pyramid",),
    paper=_PAPER,
)
def pvt_stem(in_chans: int, out_dim: int, *, patch_size: int, grid: int, pos_embed: bool) -> nn.Module:
    return PositionalPatchEmbed(in_chans, out_dim, patch_size=patch_size, grid=grid, pos_embed=pos_embed)


@register(
    "downsample",
    "pvt",
    params=(
        Param("grid", int, min=1, help=_GRID_HELP),
        Param("pos_embed", bool, True, help="add a learned absolute position embedding"),
    ),
    paper=_PAPER,
)
def pvt_downsample(in_dim: int, out_dim: int, *, grid: int, pos_embed: bool) -> nn.Module:
    return PositionalDownsample(in_dim, out_dim, grid=grid, pos_embed=pos_embed)
