"""Hire-MLP's block: MLPs over regions rearranged into channels, with cross-region shifts and a
split-attention fusion (Guo et al., "Hire-MLP: Vision MLP via Hierarchical Rearrangement", CVPR 2022).
"""
from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import init_convs_trunc_normal
from archbench.registry import BlockContext, Param, register


def _wrap_rows(x: torch.Tensor, length: int, shift: int) -> torch.Tensor:
    """Rows ``(i - shift) mod H`` for i < ``length``: a circular roll by ``shift`` followed by
    circular padding to ``length``, in one gather (works even when the padding exceeds H)."""
    index = (torch.arange(length, device=x.device) - shift) % x.shape[2]
    return x.index_select(2, index)


class RegionMixer(nn.Module):
    """Inner-region rearrangement along H: each run of ``region`` rows is folded into the channels
    (C·r), mixed by a bottleneck MLP (C·r → C/2 → C·r, BN + ReLU) and unfolded again.

    ``shift`` is the cross-region step: rows are rolled before the grouping and rolled back after,
    so successive blocks see region borders in different places. H is padded circularly up to a
    multiple of ``region``, as in the release, so any map size works.
    """

    def __init__(self, dim: int, region: int, shift: int) -> None:
        super().__init__()
        self.region = region
        self.shift = shift
        self.mlp = nn.Sequential(
            nn.Conv2d(dim * region, dim // 2, 1, bias=False),
            nn.BatchNorm2d(dim // 2),
            nn.ReLU(),
            nn.Conv2d(dim // 2, dim * region, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        r = self.region
        padded = H + (-H) % r
        x = _wrap_rows(x, padded, self.shift)  # (B, C, Hp, W)
        x = x.reshape(B, C, padded // r, r, W).transpose(2, 3).reshape(B, C * r, padded // r, W)
        x = self.mlp(x)  # (B, C·r, Hp/r, W)
        x = x.reshape(B, C, r, padded // r, W).transpose(2, 3).reshape(B, C, padded, W)
        # Undo the roll and drop the padding: output row i is mixed row (i + shift) mod H.
        return x.index_select(2, (torch.arange(H, device=x.device) + self.shift) % H)


class HireModule(nn.Module):
    """The token mixer: an H-region branch, a W-region branch and a 1×1 channel branch, fused by
    split attention (a softmax over the three branches per channel, from their pooled sum)."""

    def __init__(self, dim: int, region: int, shift: int) -> None:
        super().__init__()
        self.mix_h = RegionMixer(dim, region, shift)
        self.mix_w = RegionMixer(dim, region, shift)  # runs on the transposed map
        self.mix_c = nn.Conv2d(dim, dim, 1)
        self.reweight = Mlp(dim, dim // 4, dim * 3, use_conv=True)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.mix_h(x)
        w = self.mix_w(x.transpose(2, 3)).transpose(2, 3)
        c = self.mix_c(x)
        weights = self.reweight((h + w + c).mean((2, 3), keepdim=True))  # (B, 3C, 1, 1)
        weights = weights.reshape(B, C, 3).permute(2, 0, 1).softmax(dim=0)  # (3, B, C)
        weights = weights.reshape(3, B, C, 1, 1)
        return self.proj(h * weights[0] + w * weights[1] + c * weights[2])


class HireBlock(nn.Module):
    """BN → Hire module → residual, then BN → 1×1-conv MLP → residual (NCHW in and out)."""

    def __init__(
        self,
        dim: int,
        region: int,
        shift: int,
        mlp_ratio: float,
        drop_path: float,
        norm_layer: LayerType = nn.BatchNorm2d,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.norm1 = norm_layer(dim)
        self.hire = HireModule(dim, region, shift)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer), use_conv=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def init_weights(self) -> None:
        init_convs_trunc_normal(self)  # as the release

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.hire(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _check(params: dict, dim: int) -> str | None:
    if dim < 4:
        return f"dim must be at least 4 (bottleneck C/2, reweighting C/4), got {dim}"
    return None


@register(
    "block",
    "hire_mlp",
    params=(
        Param("region", int, min=1, help="inner-region size in pixels (Hire-MLP stages: 4, 3, 3, 2)"),
        Param("step_stride", int, 2, min=1, help="shift cycle: block i shifts by (i mod step_stride)·step_dilation"),
        Param("step_dilation", int, 1, min=0, help="pixels per shift step (Hire-MLP stages: 2, 2, 1, 1)"),
        Param("mlp_ratio", float, 4.0, min=0.25),
    ),
    paper="Hire-MLP, Guo et al., CVPR 2022",
    check=_check,
)
def hire_mlp(ctx: BlockContext, *, region: int, step_stride: int, step_dilation: int, mlp_ratio: float) -> nn.Module:
    shift = ctx.block_phase(step_stride) * step_dilation
    return HireBlock(ctx.dim, region, shift, mlp_ratio, ctx.drop_path)
