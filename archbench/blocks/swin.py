"""Swin's window attention with shifted windows and relative position bias, at any resolution
(Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", ICCV 2021).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType

# Only timm.models has Swin's attention (timm.layers has no window attention); subclassed so its
# parameter names, init and timm parity stay exactly timm's.
from timm.models.swin_transformer import WindowAttention
from torch import nn

from archbench.blocks._common import divisible_by_heads, window_partition, window_reverse
from archbench.registry import BlockContext, Param, register

# Swin's (and timm's) additive mask between tokens of different shifted regions.
_MASK_VALUE = -100.0


def relative_index(window: tuple[int, int], table_window: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(N, N) indices into a relative-bias table built for ``table_window``, for a ``window`` no larger.

    Every offset of the smaller window already has its row in the larger table, so a clamped window
    reads the exact learned biases (no interpolation).
    """
    wh, ww = window
    pos = torch.arange(wh * ww, device=device)
    # Row/column by floor division (not meshgrid) so MAC counters see only ops they know are free.
    rows, cols = pos // ww, pos % ww  # (N,)
    rows = rows[:, None] - rows[None, :] + table_window[0] - 1  # (N, N), offsets shifted to >= 0
    cols = cols[:, None] - cols[None, :] + table_window[1] - 1
    return rows * (2 * table_window[1] - 1) + cols


def shifted_window_mask(
    size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """(num_windows, N, N) additive mask so a shifted window only mixes tokens that were neighbours.

    ``size`` is the padded map; the three bands per axis follow Swin's construction.
    """
    Hp, Wp = size
    region = torch.zeros(1, Hp, Wp, 1, device=device, dtype=dtype)
    label = 0
    for hs in (slice(0, -window[0]), slice(-window[0], -shift[0] or None), slice(-shift[0] or Hp, None)):
        for ws in (slice(0, -window[1]), slice(-window[1], -shift[1] or None), slice(-shift[1] or Wp, None)):
            region[:, hs, ws, :] = label
            label += 1
    labels = window_partition(region, window).flatten(1)  # (nW, N)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return diff.masked_fill(diff != 0, _MASK_VALUE).masked_fill(diff == 0, 0.0)


class AnySizeWindowAttention(WindowAttention):
    """timm's W-MSA (same parameters: ``qkv``, ``proj``, ``relative_position_bias_table``) with the
    window chosen per forward and fused ``scaled_dot_product_attention`` taking bias + mask."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int], qkv_bias: bool) -> None:
        super().__init__(dim, num_heads=num_heads, window_size=window_size, qkv_bias=qkv_bias)
        self._index_cache: dict[tuple[tuple[int, int], str], torch.Tensor] = {}

    def relative_bias(self, window: tuple[int, int]) -> torch.Tensor:
        table = self.relative_position_bias_table
        key = (window, str(table.device))
        if key not in self._index_cache:
            self._index_cache[key] = relative_index(window, self.window_size, table.device)
        n = window[0] * window[1]
        bias = table[self._index_cache[key].reshape(-1)].reshape(n, n, -1)
        return bias.permute(2, 0, 1)  # (heads, N, N)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, window: tuple[int, int], mask: torch.Tensor | None = None, batch: int = 1
    ) -> torch.Tensor:
        BW, N, C = x.shape  # BW = batch · windows
        qkv = self.qkv(x).reshape(batch, BW // batch, N, 3, self.num_heads, -1).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)  # (B, nW, heads, N, d)
        attn_mask = self.relative_bias(window)  # (heads, N, N)
        if mask is not None:
            attn_mask = attn_mask + mask.unsqueeze(1)  # (nW, heads, N, N): broadcast over the batch, no copy
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype))  # (B, nW, heads, N, d)
        out = out.transpose(2, 3).reshape(BW, N, -1)
        return self.proj(out)


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP on an NCHW map of any size.

    The window is clamped to the map where the map is smaller (then there is nothing to shift);
    otherwise the map is zero-padded to a multiple of the window, then cyclically shifted, and the
    shifted-window mask is built for that padded size (cached per size), as Swin's detection code does.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window_size: tuple[int, int],
        shifted: bool,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        act_layer: LayerType = nn.GELU,
        norm_layer: LayerType = nn.LayerNorm,
    ) -> None:
        super().__init__()
        act_layer, norm_layer = get_act_layer(act_layer), get_norm_layer(norm_layer)
        self.window_size = window_size
        self.shifted = shifted
        self.norm1 = norm_layer(dim)
        self.attn = AnySizeWindowAttention(dim, heads, window_size, qkv_bias)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def window_and_shift(self, H: int, W: int) -> tuple[tuple[int, int], tuple[int, int]]:
        window = (min(self.window_size[0], H), min(self.window_size[1], W))
        shift = tuple(w // 2 if self.shifted and r > w else 0 for r, w in zip((H, W), window))
        return window, shift  # type: ignore[return-value]

    def mask(self, size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        key = (size, window, shift, str(like.device), like.dtype)
        if key not in self._mask_cache:
            self._mask_cache[key] = shifted_window_mask(size, window, shift, like.device, like.dtype)
        return self._mask_cache[key]

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        window, shift = self.window_and_shift(H, W)
        pad_h, pad_w = (-H) % window[0], (-W) % window[1]
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, C)
        Hp, Wp = H + pad_h, W + pad_w
        mask = None
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = self.mask((Hp, Wp), window, shift, x)
        windows = window_partition(x, window)  # (B·nW, wh·ww, C)
        windows = self.attn(windows, window, mask, batch=B)
        x = window_reverse(windows, window, Hp, Wp)  # (B, Hp, Wp, C)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :H, :W, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


@register(
    "block",
    "window",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly (Swin: dim / 32)"),
        Param("window_size", int, 7, min=1, help="side of the attention window, clamped to the map"),
        Param("shift", bool, True, help="odd blocks of a stage shift the windows by window_size // 2"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
    ),
    layouts=("pyramid",),
    paper="Swin Transformer, Liu et al., ICCV 2021",
    check=divisible_by_heads,
)
def window(ctx: BlockContext, *, heads: int, window_size: int, shift: bool, mlp_ratio: float, qkv_bias: bool) -> nn.Module:
    # As Swin/timm: a stage whose map is smaller than the window gets a window (and bias table) of the map.
    table_window = (min(window_size, ctx.resolution[0]), min(window_size, ctx.resolution[1]))
    shifted = shift and ctx.block_phase(2) == 1
    return SwinBlock(ctx.dim, heads, table_window, shifted, mlp_ratio, qkv_bias, ctx.drop_path)
