"""Multiscale pooling attention (Fan et al., "Multiscale Vision Transformers", ICCV 2021; Li et al.,
"MViTv2: Improved Multiscale Vision Transformers for Classification and Detection", CVPR 2022).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import divisible_by_heads
from archbench.registry import BlockContext, Param, register

_PAPER = "MViT, Fan et al., ICCV 2021; MViTv2, Li et al., CVPR 2022"
POOL_MODES = ("conv", "max", "avg")
# MViTv2's LayerNorm (timm's norm_eps 1e-6) for tokens and for the pooled per-head q/k/v.
LAYER_NORM = partial(nn.LayerNorm, eps=1e-6)


def pooled_size(size: int, kernel: int, stride: int) -> int:
    """Side of a map after pooling with padding kernel // 2 (ceil(size / stride) for odd kernels)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """(L, d) -> (length, d) by linear interpolation along L (F.interpolate's "linear",
    align_corners=False), as MViTv2's detection code does for maps of another size.

    Written as a gather and a lerp so the MAC counters see only ops they know are free.
    """
    if table.shape[0] == length:
        return table
    scale = table.shape[0] / length
    pos = ((torch.arange(length, device=table.device, dtype=table.dtype) + 0.5) * scale - 0.5).clamp(min=0)
    low = pos.floor().long().clamp(max=table.shape[0] - 1)
    high = (low + 1).clamp(max=table.shape[0] - 1)
    return torch.lerp(table[low], table[high], (pos - low.to(pos.dtype)).unsqueeze(-1))


def relative_offsets(q: int, k: int, device: torch.device) -> torch.Tensor:
    """(q, k) row indices into a decomposed relative-position table of length 2·max(q, k) − 1.

    A pooled axis is stretched to the finer one (MViTv2 Eq. 4), so query i and key j of maps of
    different sizes meet at offset i·q_ratio − j·k_ratio, shifted to start at 0.
    """
    q_ratio, k_ratio = max(k / q, 1.0), max(q / k, 1.0)
    rows = torch.arange(q, device=device).unsqueeze(-1) * q_ratio
    cols = torch.arange(k, device=device).unsqueeze(0) * k_ratio
    return (rows - cols + (k - 1) * k_ratio).long()


def axis_bias(q: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(A, M, d) queries grouped by their position along one axis, (A, K, d) table rows -> (A, M, K)."""
    return torch.bmm(q, table.transpose(1, 2))


class PoolingAttention(nn.Module):
    """Multi-head pooling attention: queries, keys and values are pooled (depthwise conv + norm per
    head, or max/avg pooling) before attending, so a stride on the queries shrinks the output map and
    a stride on keys/values cuts the cost; MViTv2 adds the residual pooling connection (pooled
    queries added to the output) and decomposed relative positions (one table per axis).

    Parameter names, order and shapes are timm's ``MultiScaleAttention`` (expand_attn) ones.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        heads: int,
        grid: tuple[int, int],
        qkv_bias: bool,
        kernel: int,
        stride_q: int,
        stride_kv: int,
        mode: str,
        residual_pooling: bool,
        rel_pos: bool,
        norm_layer: LayerType,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim_out // heads
        self.dim_out = dim_out
        self.kernel, self.stride_q, self.stride_kv = kernel, stride_q, stride_kv
        self.residual_pooling = residual_pooling
        if rel_pos:
            # Sized for the build map (q and k sides at the architecture's own resolution); other
            # sizes interpolate it (resize_table).
            q_side, kv_side = pooled_size(grid[0], kernel, stride_q), pooled_size(grid[0], kernel, stride_kv)
            length = 2 * max(q_side, kv_side) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(length, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(length, self.head_dim))
        else:
            self.rel_pos_h = self.rel_pos_w = None
        self.qkv = nn.Linear(dim, 3 * dim_out, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)
        self.pool_q, self.norm_q = self._pool(kernel, stride_q, mode, norm_layer)
        self.pool_k, self.norm_k = self._pool(kernel, stride_kv, mode, norm_layer)
        self.pool_v, self.norm_v = self._pool(kernel, stride_kv, mode, norm_layer)

    def _pool(self, kernel: int, stride: int, mode: str, norm_layer: LayerType) -> tuple[nn.Module | None, nn.Module | None]:
        if kernel == 1 and stride == 1:  # MViT skips a 1×1/1 pooling altogether
            return None, None
        if mode == "conv":  # one depthwise kernel shared by the heads, then a norm per head
            conv = nn.Conv2d(self.head_dim, self.head_dim, kernel, stride, kernel // 2, groups=self.head_dim, bias=False)
            return conv, get_norm_layer(norm_layer)(self.head_dim)
        op = nn.MaxPool2d if mode == "max" else nn.AvgPool2d
        return op(kernel, stride, kernel // 2), None

    def init_weights(self) -> None:
        if self.rel_pos_h is not None:
            trunc_normal_(self.rel_pos_h, std=0.02)
            trunc_normal_(self.rel_pos_w, std=0.02)

    @staticmethod
    def _pooled(pool: nn.Module | None, norm: nn.Module | None, t: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        if pool is None:
            return t, hw
        B, h, _, d = t.shape
        t = pool(t.reshape(B * h, *hw, d).permute(0, 3, 1, 2))  # (B·h, d, H', W')
        hw = (t.shape[2], t.shape[3])
        t = t.flatten(2).transpose(1, 2).reshape(B, h, -1, d)  # (B, h, H'·W', d)
        return (norm(t) if norm is not None else t), hw

    def relative_bias(self, q: torch.Tensor, q_hw: tuple[int, int], k_hw: tuple[int, int]) -> torch.Tensor:
        """(B, h, Nq, Nk) additive logits: rel_h(q_i) + rel_w(q_j), from the unscaled queries."""
        assert self.rel_pos_h is not None and self.rel_pos_w is not None
        B, h, _, d = q.shape
        (qh, qw), (kh, kw) = q_hw, k_hw
        table_h = resize_table(self.rel_pos_h, 2 * max(qh, kh) - 1)[relative_offsets(qh, kh, q.device)]  # (qh, kh, d)
        table_w = resize_table(self.rel_pos_w, 2 * max(qw, kw) - 1)[relative_offsets(qw, kw, q.device)]  # (qw, kw, d)
        grid = q.reshape(B * h, qh, qw, d)
        rel_h = axis_bias(grid.permute(1, 0, 2, 3).reshape(qh, -1, d), table_h)  # (qh, B·h·qw, kh)
        rel_w = axis_bias(grid.permute(2, 0, 1, 3).reshape(qw, -1, d), table_w)  # (qw, B·h·qh, kw)
        rel_h = rel_h.reshape(qh, B * h, qw, kh).permute(1, 0, 2, 3)  # (B·h, qh, qw, kh)
        rel_w = rel_w.reshape(qw, B * h, qh, kw).permute(1, 2, 0, 3)  # (B·h, qh, qw, kw)
        bias = rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)  # (B·h, qh, qw, kh, kw)
        return bias.reshape(B, h, qh * qw, kh * kw)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d)
        q, q_hw = self._pooled(self.pool_q, self.norm_q, q, hw)
        k, k_hw = self._pooled(self.pool_k, self.norm_k, k, hw)
        v, _ = self._pooled(self.pool_v, self.norm_v, v, hw)
        bias = self.relative_bias(q, q_hw, k_hw) if self.rel_pos_h is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, h, Nq, d)
        if self.residual_pooling:
            out = out + q
        return self.proj(out.transpose(1, 2).reshape(B, -1, self.dim_out)), q_hw


class MultiScaleBlock(nn.Module):
    """Pre-norm pooling attention + MLP, NCHW in and out. With ``stride_q`` > 1 and a wider
    ``dim_out`` it is MViT's stage transition: queries pooled (the map shrinks), channels expanded in
    the attention (MViTv2's expand_attn), the shortcut max-pooled and projected to match."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        *,
        heads: int,
        grid: tuple[int, int],
        mlp_ratio: float,
        qkv_bias: bool,
        kernel: int,
        stride_q: int,
        stride_kv: int,
        mode: str,
        residual_pooling: bool,
        rel_pos: bool,
        drop_path: float,
        norm_layer: LayerType = LAYER_NORM,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.norm1 = norm_layer(dim)
        # As the release: the shortcut reads the normalised input where it is projected, the raw one otherwise.
        self.shortcut_proj_attn = nn.Linear(dim, dim_out) if dim != dim_out else None
        self.shortcut_pool_attn = nn.MaxPool2d(stride_q + 1, stride_q, (stride_q + 1) // 2) if stride_q > 1 else None
        self.attn = PoolingAttention(
            dim,
            dim_out,
            heads=heads,
            grid=grid,
            qkv_bias=qkv_bias,
            kernel=kernel,
            stride_q=stride_q,
            stride_kv=stride_kv,
            mode=mode,
            residual_pooling=residual_pooling,
            rel_pos=rel_pos,
            norm_layer=norm_layer,
        )
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim_out)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        x_norm = self.norm1(x)
        shortcut = x if self.shortcut_proj_attn is None else self.shortcut_proj_attn(x_norm)
        if self.shortcut_pool_attn is not None:
            grid = shortcut.transpose(1, 2).reshape(B, -1, H, W)
            shortcut = self.shortcut_pool_attn(grid).flatten(2).transpose(1, 2)  # (B, H'W', C_out)
        out, (h, w) = self.attn(x_norm, (H, W))
        x = shortcut + self.drop_path1(out)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.transpose(1, 2).reshape(B, -1, h, w)  # (B, C_out, H', W')


def _check(params: dict[str, Any], dim: int) -> str | None:
    if params["kernel"] % 2 == 0:  # padding kernel // 2 keeps ceil(size / stride) for odd kernels only
        return f"pooling kernel must be odd, got {params['kernel']}"
    return divisible_by_heads(params, dim)


_PARAMS = (
    Param("heads", int, min=1, help="attention heads; dim must divide evenly (MViTv2: dim / 96)"),
    Param("mlp_ratio", float, 4.0, min=0.25),
    Param("qkv_bias", bool, True),
    Param("mode", str, "conv", choices=POOL_MODES, help="pooling of q/k/v: depthwise conv + norm (v2), max or avg"),
    Param("kernel", int, 3, min=1, help="pooling kernel of queries, keys and values"),
    Param("stride_kv", int, 1, min=1, help="key/value pooling stride (MViTv2: 4, 2, 1, 1 by stage)"),
    Param("residual_pooling", bool, True, help="add the pooled queries to the attention output (v2)"),
    Param("rel_pos", bool, True, help="decomposed relative position bias (v2)"),
)


@register("block", "pool_attention", params=_PARAMS, layouts=("pyramid",), paper=_PAPER, check=_check)
def pool_attention(ctx: BlockContext, **params: Any) -> nn.Module:
    return MultiScaleBlock(ctx.dim, ctx.dim, grid=ctx.resolution, stride_q=1, drop_path=ctx.drop_path, **params)


class PoolingTransition(MultiScaleBlock):
    """The first block of an MViT stage as a downsampling layer: queries pooled by 2, C_in -> C_out."""

    stride = 2


@register(
    "downsample",
    "pool_attention",
    params=(
        *_PARAMS,
        Param("grid", int, min=1, help="side of the stage's map at the architecture's resolution (img_size / total stride)"),
    ),
    paper=_PAPER,
    check=_check,
)
def pool_attention_transition(in_dim: int, out_dim: int, *, grid: int, **params: Any) -> nn.Module:
    # The attention width is the stage's (out_dim): heads divide it, as in MViTv2's expand_attn.
    # No drop path here (a downsampling layer has no place in the drop-path schedule).
    return PoolingTransition(in_dim, out_dim, grid=(2 * grid, 2 * grid), stride_q=2, drop_path=0.0, **params)
