"""CMT's block (LPU + lightweight MHSA with a relative bias + IRFFN) and its 1280-wide conv head
(Guo et al., "CMT: Convolutional Neural Networks Meet Vision Transformers", CVPR 2022).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import ACT_NAMES, ACTS, divisible_by_heads, pad_to_kernel
from archbench.registry import BlockContext, Param, register


class RelativePositionBias(nn.Module):
    """CMT's learned attention bias B ∈ R^{heads × N × N/sr²}, one value per (query, key) pair.

    It is sized by the feature map at the architecture's own resolution; at any other size both its
    query grid and its key grid are resized bicubically, so the block runs at any resolution.
    """

    def __init__(self, heads: int, grid: tuple[int, int], sr_ratio: int) -> None:
        super().__init__()
        self.grid = grid
        self.kv_grid = (max(grid[0] // sr_ratio, 1), max(grid[1] // sr_ratio, 1))
        n, m = grid[0] * grid[1], self.kv_grid[0] * self.kv_grid[1]
        # The release draws it from N(0, 1) (torch.randn), not the small init of other parameters.
        self.bias = nn.Parameter(torch.randn(heads, n, m))

    def forward(self, hw: tuple[int, int], kv_hw: tuple[int, int]) -> torch.Tensor:
        if hw == self.grid and kv_hw == self.kv_grid:
            return self.bias  # (heads, N, M)
        heads = self.bias.shape[0]
        # Resize the key grid, with every (head, query) pair as a channel ...
        bias = self.bias.reshape(1, -1, *self.kv_grid)
        bias = F.interpolate(bias, size=kv_hw, mode="bicubic", align_corners=False)  # (1, h·N, kh', kw')
        # ... then the query grid, with every (head, key) pair as a channel.
        m = kv_hw[0] * kv_hw[1]
        bias = bias.reshape(heads, *self.grid, m).permute(0, 3, 1, 2).reshape(1, heads * m, *self.grid)
        bias = F.interpolate(bias, size=hw, mode="bicubic", align_corners=False)  # (1, h·M', H', W')
        return bias.reshape(heads, m, hw[0] * hw[1]).transpose(1, 2)  # (heads, N', M')


class LightweightAttention(nn.Module):
    """LMHSA: keys and values from a map shrunk ``sr_ratio``× by a depthwise k×k/k conv + BN, and a
    learned relative position bias added to the attention logits."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, sr_ratio: int, relative_bias: RelativePositionBias) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            # Depthwise (groups=dim) rather than PVT's dense reduction conv; BN as in the release.
            self.sr = nn.Sequential(
                nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio, groups=dim),
                nn.BatchNorm2d(dim),
            )
        self.relative_bias = relative_bias

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)
        source, kv_hw = x, hw
        if self.sr_ratio > 1:
            reduced = self.sr(pad_to_kernel(x.transpose(1, 2).reshape(B, C, *hw), self.sr_ratio))  # (B, C, H/sr, W/sr)
            kv_hw = (reduced.shape[2], reduced.shape[3])
            source = reduced.flatten(2).transpose(1, 2)  # (B, M, C)
        k = self.k(source).reshape(B, -1, self.heads, self.head_dim).transpose(1, 2)  # (B, h, M, d)
        v = self.v(source).reshape(B, -1, self.heads, self.head_dim).transpose(1, 2)
        # Explicit logits: the bias joins before the softmax, and matmul is counted by every counter.
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.relative_bias(hw, kv_hw)  # (B, h, N, M)
        out = attn.softmax(dim=-1) @ v  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class InvertedResidualFFN(nn.Module):
    """IRFFN: 1×1 expand (GELU, BN) → 3×3 depthwise with a residual (GELU, BN) → 1×1 project (BN)."""

    def __init__(
        self, dim: int, hidden_dim: int, act_layer: LayerType = nn.GELU, norm_layer: LayerType = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        act_layer, norm_layer = get_act_layer(act_layer), get_norm_layer(norm_layer)
        self.expand = nn.Sequential(nn.Conv2d(dim, hidden_dim, 1), act_layer(), norm_layer(hidden_dim))
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.dw_act = act_layer()
        self.dw_norm = norm_layer(hidden_dim)
        self.project = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), norm_layer(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)  # (B, hidden, H, W)
        x = self.dw_norm(self.dw_act(self.dwconv(x) + x))
        return self.project(x)  # (B, C, H, W)


class CMTBlock(nn.Module):
    """LPU (3×3 depthwise conv, residual), then pre-norm LMHSA and IRFFN residual branches; NCHW."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        sr_ratio: int,
        relative_bias: RelativePositionBias,
        drop_path: float,
        norm_layer: LayerType = nn.LayerNorm,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.lpu = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = norm_layer(dim, eps=1e-6)
        self.attn = LightweightAttention(dim, heads, qkv_bias, sr_ratio, relative_bias)
        self.norm2 = norm_layer(dim, eps=1e-6)
        self.ffn = InvertedResidualFFN(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        x = x + self.lpu(x)  # the LPU's residual carries no drop path, as in the release
        t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        t = t + self.drop_path(self.attn(self.norm1(t), (H, W)))
        ffn_in = self.norm2(t).transpose(1, 2).reshape(B, C, H, W)
        t = t + self.drop_path(self.ffn(ffn_in).flatten(2).transpose(1, 2))
        return t.transpose(1, 2).reshape(B, C, H, W)


def _relative_bias(ctx: BlockContext, heads: int, sr_ratio: int, shared: bool) -> RelativePositionBias:
    """The release keeps ONE relative bias per stage, shared by all of that stage's blocks (its
    parameter counts include it once): the stage's first block creates it in ``ctx.stage_shared``."""
    if not shared:
        return RelativePositionBias(heads, ctx.resolution, sr_ratio)
    key = f"cmt.relative_bias:{heads}:{sr_ratio}"
    if key not in ctx.stage_shared:
        ctx.stage_shared[key] = RelativePositionBias(heads, ctx.resolution, sr_ratio)
    return ctx.stage_shared[key]


@register(
    "block",
    "cmt",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("sr_ratio", int, 1, min=1, help="keys/values reduced by a k×k/k depthwise conv (CMT: 8,4,2,1)"),
        Param("mlp_ratio", float, 4.0, min=0.25, help="IRFFN expansion (Ti 3.6, XS 3.77, S/B 4)"),
        Param("qkv_bias", bool, True),
        Param("share_bias", bool, True, help="one relative bias per stage, shared by its blocks (release)"),
    ),
    layouts=("pyramid",),
    paper="CMT: Convolutional Neural Networks Meet Vision Transformers, Guo et al., CVPR 2022",
    check=divisible_by_heads,
)
def cmt(ctx: BlockContext, *, heads: int, sr_ratio: int, mlp_ratio: float, qkv_bias: bool, share_bias: bool) -> nn.Module:
    bias = _relative_bias(ctx, heads, sr_ratio, share_bias)
    return CMTBlock(ctx.dim, heads, mlp_ratio, qkv_bias, sr_ratio, bias, ctx.drop_path)


class CMTHead(nn.Module):
    """CMT's classifier: 1×1 conv to ``fc_dim`` + BN + Swish on the last map, average pool, dropout, linear."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        fc_dim: int,
        drop: float,
        act_layer: LayerType = nn.SiLU,
        norm_layer: LayerType = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.fc = nn.Conv2d(in_dim, fc_dim, 1)
        self.norm = get_norm_layer(norm_layer)(fc_dim)
        self.act = get_act_layer(act_layer)()
        self.drop = nn.Dropout(drop)
        self.classifier = nn.Linear(fc_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.fc(x)))  # (B, fc_dim, H, W): the projection runs before pooling
        x = x.mean(dim=(2, 3))  # (B, fc_dim)
        return self.classifier(self.drop(x))


@register(
    "head",
    "cmt",
    params=(
        Param("fc_dim", int, 1280, min=1, help="width of the 1×1 conv before pooling"),
        Param("act", str, "silu", choices=ACTS, help="activation after the BN (release: Swish)"),
        Param("drop", float, 0.1, min=0.0, help="dropout before the classifier (release: 0.1; CMT-B 0.3)"),
    ),
    layouts=("pyramid",),
    paper="CMT: Convolutional Neural Networks Meet Vision Transformers, Guo et al., CVPR 2022",
)
def cmt_head(in_dim: int, num_classes: int, *, layout: str, fc_dim: int, act: str, drop: float) -> nn.Module:
    return CMTHead(in_dim, num_classes, fc_dim=fc_dim, act_layer=ACT_NAMES[act], drop=drop)
