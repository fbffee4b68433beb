"""Token-mixing MLP blocks, MLP-Mixer (Tolstikhin et al., NeurIPS 2021) and ResMLP (Touvron et al.,
TPAMI 2022), whose token-sized weights are resampled bilinearly to run at any grid.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
# Mixer's and ResMLP's blocks (and ResMLP's Affine norm) exist only in timm.models, not timm.layers;
# subclassed so parameter names and parity with timm's models stay exactly timm's.
from timm.models.mlp_mixer import Affine, MixerBlock, ResBlock
from torch import nn

from archbench.registry import BlockContext, Param, TokenState, register


def resample_in(weight: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """(M, h·w) -> (M, h'·w'): resize the input-token axis as a grid, rescaled by N / N'.

    Token mixing is a linear map over the token axis, sized by the token count at the build
    resolution. At any other grid its weights are resampled rather than rebuilt: a weight of shape
    (N_out, N_in), N = h·w, is viewed as an image over the input grid (here) and one over the output
    grid (:func:`resample_out`), and each is resized bilinearly (``align_corners=False``) to the grid
    of the forward pass. Along the input axis the weights are also scaled by N_in / N_in', so a sum
    over more (fewer) tokens keeps its magnitude, as a Riemann sum over a finer (coarser) sampling
    of the same image would. Gradients flow to the weights at the build grid.
    """
    if src == dst:
        return weight
    m = weight.shape[0]
    grid = weight.reshape(m, 1, *src)  # (M, 1, h, w)
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    return grid.reshape(m, -1) * (src[0] * src[1] / (dst[0] * dst[1]))


def resample_out(weight: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """(h·w, ...) -> (h'·w', ...): resize the output-token axis (weights or bias) as a grid."""
    if src == dst:
        return weight
    rest = weight.shape[1:]
    grid = weight.reshape(src[0] * src[1], -1).t().reshape(-1, 1, *src)  # (M, 1, h, w)
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)
    return grid.reshape(grid.shape[0], -1).t().reshape(dst[0] * dst[1], *rest)


class _BothLayouts:
    """Mixin: the pyramid (B, C, H, W) and isotropic (B, N, C) interfaces over one ``mix``."""

    def forward(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:
        if x.ndim == 4:  # pyramid
            B, C, H, W = x.shape
            t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
            t = self.mix(t, (H, W), 0)  # type: ignore[attr-defined]
            return t.transpose(1, 2).reshape(B, C, H, W)
        assert tokens is not None
        return self.mix(x, tokens.hw, tokens.num_prefix_tokens)  # type: ignore[attr-defined]


def _add_to_grid(x: torch.Tensor, update: torch.Tensor, prefix: int) -> torch.Tensor:
    """x + update, where ``update`` covers only the grid tokens behind ``prefix`` class tokens."""
    return x + (F.pad(update, (0, 0, prefix, 0)) if prefix else update)


class MixerLayer(_BothLayouts, MixerBlock):
    """timm's MixerBlock (same parameter names) with its token MLP resampled to the forward's grid.

    Prefix (class) tokens, if a spec adds them, skip token mixing and only pass the channel MLP.
    """

    def __init__(self, dim: int, grid: tuple[int, int], tokens_mlp_ratio: float, mlp_ratio: float, drop_path: float) -> None:
        MixerBlock.__init__(
            self,
            dim,
            grid[0] * grid[1],
            mlp_ratio=(tokens_mlp_ratio, mlp_ratio),
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            drop_path=drop_path,
        )
        self.grid = grid

    def mix_tokens(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        mlp = self.mlp_tokens
        x = x.transpose(1, 2)  # (B, C, N): mix along tokens
        x = F.linear(x, resample_in(mlp.fc1.weight, self.grid, hw), mlp.fc1.bias)  # (B, C, tokens_dim)
        x = mlp.act(x)
        x = F.linear(x, resample_out(mlp.fc2.weight, self.grid, hw), resample_out(mlp.fc2.bias, self.grid, hw))
        return x.transpose(1, 2)  # (B, N, C)

    def mix(self, x: torch.Tensor, hw: tuple[int, int], prefix: int) -> torch.Tensor:
        x = _add_to_grid(x, self.drop_path(self.mix_tokens(self.norm1(x)[:, prefix:], hw)), prefix)
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class ResMLPLayer(_BothLayouts, ResBlock):
    """timm's ResBlock (Affine norms, one linear token map, LayerScale) resampled to the forward's grid."""

    def __init__(self, dim: int, grid: tuple[int, int], mlp_ratio: float, layer_scale: float, drop_path: float) -> None:
        ResBlock.__init__(
            self, dim, grid[0] * grid[1], mlp_ratio=mlp_ratio, norm_layer=Affine, init_values=layer_scale, drop_path=drop_path
        )
        self.grid = grid

    def mix_tokens(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        weight = resample_out(resample_in(self.linear_tokens.weight, self.grid, hw), self.grid, hw)  # (N', N')
        bias = resample_out(self.linear_tokens.bias, self.grid, hw)
        return F.linear(x.transpose(1, 2), weight, bias).transpose(1, 2)  # (B, N, C)

    def mix(self, x: torch.Tensor, hw: tuple[int, int], prefix: int) -> torch.Tensor:
        x = _add_to_grid(x, self.drop_path(self.ls1 * self.mix_tokens(self.norm1(x)[:, prefix:], hw)), prefix)
        return x + self.drop_path(self.ls2 * self.mlp_channels(self.norm2(x)))


@register(
    "block",
    "mixer",
    params=(
        Param("tokens_mlp_ratio", float, 0.5, min=0.01, help="token-MLP hidden width as a fraction of dim (Mixer-B: 384/768)"),
        Param("mlp_ratio", float, 4.0, min=0.25, help="channel-MLP expansion"),
    ),
    layouts=("isotropic", "pyramid"),
    paper="MLP-Mixer, Tolstikhin et al., NeurIPS 2021",
)
def mixer(ctx: BlockContext, *, tokens_mlp_ratio: float, mlp_ratio: float) -> nn.Module:
    return MixerLayer(ctx.dim, ctx.resolution, tokens_mlp_ratio, mlp_ratio, ctx.drop_path)


@register(
    "block",
    "resmlp",
    params=(
        Param("mlp_ratio", float, 4.0, min=0.25, help="channel-MLP expansion"),
        Param("layer_scale", float, 0.1, min=0.0, help="LayerScale init (ResMLP: 0.1 up to depth 12, then 1e-5/1e-6)"),
    ),
    layouts=("isotropic", "pyramid"),
    paper="ResMLP, Touvron et al., TPAMI 2022",
)
def resmlp(ctx: BlockContext, *, mlp_ratio: float, layer_scale: float) -> nn.Module:
    return ResMLPLayer(ctx.dim, ctx.resolution, mlp_ratio, layer_scale, ctx.drop_path)
