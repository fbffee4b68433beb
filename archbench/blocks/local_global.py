"""Local-to-global self-attention: window attention on several scales of a stage's map at once (Li et
al., "Local-to-Global Self-Attention in Vision Transformers", arXiv 2107.04735).

The release (ljpadam/LG-Transformer) could not be read and only the abstract was reachable, so the
block is built from the abstract's description: a multi-path structure in every stage, each path
reasoning at its own granularity, from local windows to the whole map. Inferred, not sourced: one
shared qkv projection; path p average-pools q/k/v by 2^p, attends within windows of the pooled map
(own relative-position bias per path; Swin's shifted windows on the full-resolution path), and is
upsampled bilinearly; the paths are summed before the output projection.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import (
    divisible_by_heads,
    window_partition,
    window_reverse,
)
from archbench.blocks.swin import relative_index, shifted_window_mask
from archbench.registry import BlockContext, Param, register

_PAPER = "Local-to-Global Self-Attention in Vision Transformers, Li et al., arXiv 2107.04735"


def pooled(size: tuple[int, int], ratio: int) -> tuple[int, int]:
    """Map size after ``ratio``×``ratio`` average pooling with ceil_mode (a partial cell still counts)."""
    return (-(-size[0] // ratio), -(-size[1] // ratio))


class LocalToGlobalAttention(nn.Module):
    """Window attention over ``len(ratios)`` paths: the map itself, then average-pooled by each ratio,
    so the coarsest path of a stage can see the whole map in one window."""

    def __init__(self, dim: int, heads: int, window: int, ratios: tuple[int, ...], resolution: tuple[int, int], qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.ratios = ratios
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Each path's table is sized for its window at the build resolution (clamped to its map, as Swin).
        self.table_windows = [tuple(min(window, s) for s in pooled(resolution, r)) for r in ratios]
        self.tables = nn.ParameterList(nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads)) for wh, ww in self.table_windows)
        self._cache: dict[tuple, torch.Tensor] = {}

    def init_weights(self) -> None:
        for table in self.tables:
            trunc_normal_(table, std=0.02)

    def _bias(self, path: int, window: tuple[int, int], device: torch.device) -> torch.Tensor:
        key = ("index", path, window, str(device))
        if key not in self._cache:
            self._cache[key] = relative_index(window, self.table_windows[path], device).reshape(-1)
        n = window[0] * window[1]
        return self.tables[path][self._cache[key]].reshape(n, n, -1).permute(2, 0, 1)  # (heads, N, N)

    def _mask(self, size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        key = ("mask", size, window, shift, str(like.device), like.dtype)
        if key not in self._cache:
            self._cache[key] = shifted_window_mask(size, window, shift, like.device, like.dtype)
        return self._cache[key]

    def _path(self, qkv: torch.Tensor, path: int, shifted: bool) -> torch.Tensor:
        """(B, h, w, 3C) projected tokens of one path -> (B, h, w, C) attended within windows."""
        B, H, W, C3 = qkv.shape
        table_window = self.table_windows[path]
        window = (min(table_window[0], H), min(table_window[1], W))
        shift = tuple(w // 2 if shifted and s > w else 0 for s, w in zip((H, W), window))
        pad_h, pad_w = (-H) % window[0], (-W) % window[1]
        qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, 3C)
        Hp, Wp = H + pad_h, W + pad_w
        bias = self._bias(path, window, qkv.device)
        if any(shift):
            qkv = torch.roll(qkv, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            bias = bias + self._mask((Hp, Wp), window, shift, qkv).unsqueeze(1)  # (nW, heads, N, N)
        windows = window_partition(qkv, window)  # (B·nW, N, 3C)
        n = windows.shape[1]
        q, k, v = windows.reshape(B, -1, n, 3, self.heads, C3 // (3 * self.heads)).permute(3, 0, 1, 4, 2, 5).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))  # (B, nW, heads, N, d)
        out = window_reverse(out.transpose(2, 3).reshape(-1, n, C3 // 3), window, Hp, Wp)  # (B, Hp, Wp, C)
        if any(shift):
            out = torch.roll(out, shifts=shift, dims=(1, 2))
        return out[:, :H, :W, :]

    def forward(self, x: torch.Tensor, shifted: bool) -> torch.Tensor:
        H, W = x.shape[1:3]
        qkv = self.qkv(x)  # (B, H, W, 3C), shared by the paths (pooling commutes with the projection)
        out = None
        for path, ratio in enumerate(self.ratios):
            if ratio == 1:
                part = self._path(qkv, path, shifted)
            else:
                coarse = F.avg_pool2d(qkv.permute(0, 3, 1, 2), ratio, ratio, ceil_mode=True)  # (B, 3C, H/r, W/r)
                part = self._path(coarse.permute(0, 2, 3, 1), path, shifted=False)
                part = F.interpolate(part.permute(0, 3, 1, 2), size=(H, W), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
            out = part if out is None else out + part
        assert out is not None
        return self.proj(out)


class LocalToGlobalBlock(nn.Module):
    """Pre-norm local-to-global attention + MLP on an NCHW map of any size."""

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        window: int,
        ratios: tuple[int, ...],
        resolution: tuple[int, int],
        shifted: bool,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        norm_layer: LayerType = nn.LayerNorm,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.shifted = shifted
        self.norm1 = norm_layer(dim)
        self.attn = LocalToGlobalAttention(dim, heads, window, ratios, resolution, qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = x + self.drop_path(self.attn(self.norm1(x), self.shifted))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)


@register(
    "block",
    "local_global",
    params=(
        Param("heads", int, min=1, help="attention heads (all paths); dim must divide evenly"),
        Param("window_size", int, 7, min=1, help="side of the attention window on every path"),
        Param("paths", int, 2, min=1, help="paths at pooling ratios 1, 2, 4, …: 1 is Swin's window attention"),
        Param("shift", bool, True, help="odd blocks shift the full-resolution path's windows (Swin)"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
    ),
    layouts=("pyramid",),
    paper=_PAPER,
    check=divisible_by_heads,
)
def local_global(ctx: BlockContext, *, heads: int, window_size: int, paths: int, shift: bool, mlp_ratio: float, qkv_bias: bool) -> nn.Module:
    return LocalToGlobalBlock(
        ctx.dim,
        heads,
        window=window_size,
        ratios=tuple(2**p for p in range(paths)),
        resolution=ctx.resolution,
        shifted=shift and ctx.block_phase(2) == 1,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_path=ctx.drop_path,
    )
