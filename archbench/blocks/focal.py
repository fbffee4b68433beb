"""Focal self-attention block (Yang et al., "Focal Self-attention for Local-Global Interactions in
Vision Transformers", NeurIPS 2021): each window attends to fine nearby tokens and pooled distant ones.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import divisible_by_heads, window_partition, window_reverse
from archbench.registry import BlockContext, Param, register

# configs/focal_*_patch4_window7_224.yaml: FOCAL_WINDOWS per stage, used when a spec leaves it at 0.
RELEASED_FOCAL_WINDOWS = (7, 5, 3, 1)
# The release masks keys with -100 rather than -inf; kept so attention maps match it.
MASKED = -100.0
POOLS = ("fc", "avg", "conv", "none")


def relative_position_index(q_size: tuple[int, int], k_size: tuple[int, int]) -> torch.Tensor:
    """(Nq, Nk) indices into a ((qh + kh - 1)·(qw + kw - 1))-entry bias table, one per query/key pair.

    The release measures query and key offsets on their own grids (tokens vs pooled windows alike).
    """
    q = torch.stack(torch.meshgrid(torch.arange(q_size[0]), torch.arange(q_size[1]), indexing="ij")).flatten(1)
    k = torch.stack(torch.meshgrid(torch.arange(k_size[0]), torch.arange(k_size[1]), indexing="ij")).flatten(1)
    rel = q[:, :, None] - k[:, None, :]  # (2, Nq, Nk)
    return (rel[0] + k_size[0] - 1) * (q_size[1] + k_size[1] - 1) + rel[1] + k_size[1] - 1


def ring_offsets(expand: int) -> tuple[tuple[int, int], ...]:
    """Key offsets (dy, dx) of the four corner-shifted windows (tl, tr, bl, br) that form the fine ring."""
    return ((expand, expand), (expand, -expand), (-expand, expand), (-expand, -expand))


def ring_index(window: int, expand: int) -> list[int]:
    """Positions of the stacked four shifted windows (4·window²) that fall outside the query window.

    As released, the four shifted windows overlap along the ring's middle rows and columns, so
    7/3 gives 4·(49 - 16) = 132 keys for the 13×13 - 7×7 = 120 ring tokens (12 seen twice).
    """
    keep = []
    for n, (dy, dx) in enumerate(ring_offsets(expand)):
        for i in range(window):
            for j in range(window):
                if not (0 <= i + dy < window and 0 <= j + dx < window):
                    keep.append((n * window + i) * window + j)
    return keep


def center_fit(x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Trim or zero-pad (B, h, w, C) centrally to (B, H, W, C); the odd row/column goes last, as released."""
    dh, dw = H - x.shape[1], W - x.shape[2]
    top, left = int(dh / 2), int(dw / 2)  # toward zero: trims and pads alike put the extra row last
    return F.pad(x, (0, 0, left, dw - left, top, dh - top))


class FocalAttention(nn.Module):
    """Window attention whose keys are the window, its fine ring and pooled sub-windows around it.

    Level 0 is the ``window``² query window plus the ring ``expand`` tokens wide (torch.roll as
    released, so border windows see the opposite border). Pooled level k (1 … focal_level-1)
    pools sub-windows of window // 2^(k-1) tokens into one and attends to a
    (focal_window + 2^(k-1) - 1)² neighbourhood of them, with zero-padded positions masked.

    Args:
        dim: channels. heads: attention heads. window: query window side (already clamped).
        expand: ring width of level 0 (0: the window alone). focal_level: levels incl. level 0.
        focal_window: side of the pooled neighbourhood at the first pooled level (odd).
        focal_pool: "fc" (learned linear pooling of each sub-window), "avg", "conv" (depthwise) or "none".
        qkv_bias: bias of the query/key/value projection.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        window: int,
        expand: int,
        focal_level: int,
        focal_window: int,
        focal_pool: str,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.window = window
        self.expand = expand
        self.focal_pool = focal_pool
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        area = window * window

        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index((window, window), (window, window)), persistent=False)
        if expand > 0:
            ring = ring_index(window, expand)
            self.register_buffer("ring_index", torch.tensor(ring, dtype=torch.long), persistent=False)
            # A free bias per (query position, ring key), not a relative table: the release's design.
            self.neighbour_bias = nn.Parameter(torch.zeros(heads, area, len(ring)))

        # Pooled levels whose sub-window is at least one token (a small clamped window has fewer).
        levels = [k for k in range(focal_level - 1) if window >> k >= 1] if focal_pool != "none" else []
        self.sub_windows = [window >> k for k in levels]  # tokens pooled into one, per side
        self.strides = [1 << k for k in levels]  # the pooled grid is 2^k finer than the window grid
        self.kernels = [2 * (focal_window // 2) + 2 * s - 1 for s in self.strides]  # unfold size
        self.sides = [kernel - s + 1 for kernel, s in zip(self.kernels, self.strides)]  # kept: [s-1:, s-1:]
        self.pools = nn.ModuleList()
        for g in self.sub_windows:
            if focal_pool == "fc":
                self.pools.append(nn.Linear(g * g, 1))
            elif focal_pool == "conv":
                self.pools.append(nn.Conv2d(dim, dim, g, stride=g, groups=dim))
            else:
                self.pools.append(nn.Identity())
        self.window_bias_tables = nn.ParameterList(
            nn.Parameter(torch.zeros(heads, (window + side - 1) ** 2)) for side in self.sides
        )
        for i, side in enumerate(self.sides):
            self.register_buffer(f"window_index_{i}", relative_position_index((window, window), (side, side)), persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        if self.expand > 0:
            trunc_normal_(self.neighbour_bias, std=0.02)
        for table in self.window_bias_tables:
            trunc_normal_(table, std=0.02)
        for pool, g in zip(self.pools, self.sub_windows):
            # The release's intended start is an average of the sub-window (its generic init then
            # overwrote it with trunc_normal; the average is kept here so pooled tokens start sane).
            if isinstance(pool, nn.Linear):
                nn.init.constant_(pool.weight, 1.0 / (g * g))
                nn.init.zeros_(pool.bias)

    def _pooled(self, x: torch.Tensor, level: int, nh: int, nw: int) -> torch.Tensor:
        """(B, Hp, Wp, C) -> (B, nh·s, nw·s, C): one token per sub-window of the level."""
        B, _, _, C = x.shape
        g, s = self.sub_windows[level], self.strides[level]
        ph, pw = nh * s, nw * s
        x = center_fit(x, ph * g, pw * g)  # (B, ph·g, pw·g, C)
        if self.focal_pool == "conv":
            return self.pools[level](x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x.view(B, ph, g, pw, g, C)
        if self.focal_pool == "avg":
            return x.mean((2, 4))
        x = x.permute(0, 1, 3, 5, 2, 4).reshape(B, ph, pw, C, g * g)
        return self.pools[level](x).squeeze(-1)  # learned weighted sum of the g² tokens

    def _pooled_kv(self, pooled: torch.Tensor, level: int) -> torch.Tensor:
        """Keys/values of the pooled neighbourhood of every window: (B, ph, pw, C) -> (B·nW, side², 2C)."""
        B, C = pooled.shape[0], self.dim
        # Only the key/value rows of the shared projection (the release also computed unused queries).
        kv = F.linear(pooled, self.qkv.weight[C:], None if self.qkv.bias is None else self.qkv.bias[C:])
        kernel, s, side = self.kernels[level], self.strides[level], self.sides[level]
        cols = F.unfold(kv.permute(0, 3, 1, 2), kernel, stride=s, padding=kernel // 2)  # (B, 2C·K², nW)
        cols = cols.view(B, 2 * C, kernel, kernel, -1)[:, :, s - 1:, s - 1:]  # (B, 2C, side, side, nW)
        return cols.permute(0, 4, 2, 3, 1).reshape(-1, side * side, 2 * C)

    def _pool_mask(self, level: int, nh: int, nw: int, device: torch.device) -> torch.Tensor:
        """(nW, side²) additive mask of the pooled neighbourhood positions that fall off the map."""
        kernel, s = self.kernels[level], self.strides[level]
        offsets = torch.arange(s - 1, kernel, device=device) - kernel // 2
        rows = torch.arange(nh, device=device)[:, None] * s + offsets  # (nh, side) pooled row indices
        cols = torch.arange(nw, device=device)[:, None] * s + offsets
        valid = ((rows >= 0) & (rows < nh * s))[:, None, :, None] & ((cols >= 0) & (cols < nw * s))[None, :, None, :]
        return torch.where(valid, 0.0, MASKED).reshape(nh * nw, -1)

    def _bias(self, nh: int, nw: int, device: torch.device) -> torch.Tensor:
        """(1 or nW, heads, window², keys): relative biases of every key group, plus off-map masks."""
        area = self.window * self.window
        local = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        parts = [local.view(area, area, self.heads).permute(2, 0, 1)]  # (heads, area, area)
        if self.expand > 0:
            parts.append(self.neighbour_bias)  # (heads, area, ring)
        fine = sum(p.shape[-1] for p in parts)
        for i, table in enumerate(self.window_bias_tables):
            index = getattr(self, f"window_index_{i}")
            parts.append(table[:, index.view(-1)].view(self.heads, area, -1))  # (heads, area, side²)
        bias = torch.cat(parts, -1).unsqueeze(0)  # (1, heads, area, keys)
        if self.sides:
            masks = torch.cat([self._pool_mask(i, nh, nw, device) for i in range(len(self.sides))], -1)
            bias = bias + F.pad(masks, (fine, 0))[:, None, None, :]  # (nW, heads, area, keys)
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape  # H, W multiples of the window
        ws, heads = self.window, self.heads
        nh, nw = H // ws, W // ws
        q, kv = self.qkv(x).split([C, 2 * C], dim=-1)  # (B, H, W, C), (B, H, W, 2C)
        q = window_partition(q, (ws, ws)).view(-1, ws * ws, heads, C // heads).transpose(1, 2)  # (B·nW, heads, area, d)

        keys = [window_partition(kv, (ws, ws))]  # (B·nW, area, 2C)
        if self.expand > 0:
            shifted = [window_partition(torch.roll(kv, (-dy, -dx), (1, 2)), (ws, ws)) for dy, dx in ring_offsets(self.expand)]
            keys.append(torch.cat(shifted, 1)[:, self.ring_index])  # (B·nW, ring, 2C)
        for level in range(len(self.sides)):
            keys.append(self._pooled_kv(self._pooled(x, level, nh, nw), level))  # (B·nW, side², 2C)
        kv = torch.cat(keys, 1)  # (B·nW, keys, 2C)
        k, v = kv.view(kv.shape[0], kv.shape[1], 2, heads, C // heads).permute(2, 0, 3, 1, 4)  # (B·nW, heads, keys, d)

        bias = self._bias(nh, nw, x.device).to(q.dtype)
        if bias.shape[0] > 1:  # per-window masks: one copy per image so SDPA gets a 4-D mask
            bias = bias.unsqueeze(0).expand(B, -1, -1, -1, -1).reshape(-1, *bias.shape[1:])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B·nW, heads, area, d)
        out = self.proj(out.transpose(1, 2).reshape(-1, ws * ws, C))
        return window_reverse(out, (ws, ws), H, W)  # (B, H, W, C)


class FocalBlock(nn.Module):
    """Pre-norm transformer block with focal self-attention (no shift, as the release's USE_SHIFT False).

    When the map at build time is no larger than the window, the window shrinks to the map and
    the ring is dropped, as released (stage 4 at 224: one 7×7 window). Maps that are not a
    multiple of the window are zero-padded at the bottom/right and cropped after attention.
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        resolution: tuple[int, int],
        window_size: int,
        expand_size: int,
        focal_level: int,
        focal_window: int,
        focal_pool: str,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float = 0.0,
        norm_layer: LayerType = nn.LayerNorm,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer, act_layer = get_norm_layer(norm_layer), get_act_layer(act_layer)
        if min(resolution) <= window_size:
            window_size, expand_size = min(resolution), 0
        self.window_size = window_size
        self.norm1 = norm_layer(dim)
        self.attn = FocalAttention(
            dim,
            heads,
            window=window_size,
            expand=expand_size,
            focal_level=focal_level,
            focal_window=focal_window,
            focal_pool=focal_pool,
            qkv_bias=qkv_bias,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        ws = self.window_size
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        t = F.pad(self.norm1(x), (0, 0, 0, -W % ws, 0, -H % ws))  # (B, Hp, Wp, C)
        t = self.attn(t)[:, :H, :W]  # (B, H, W, C)
        x = x + self.drop_path(t)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


def _check(params: dict[str, Any], dim: int) -> str | None:
    problem = divisible_by_heads(params, dim)
    if problem:
        return problem
    if params["expand_size"] >= params["window_size"]:
        return f"expand_size {params['expand_size']} must be smaller than window_size {params['window_size']}"
    if params["focal_window"] and params["focal_window"] % 2 == 0:
        return f"focal_window must be odd (the pooled region is centred on the window), got {params['focal_window']}"
    return None


@register(
    "block",
    "focal",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("window_size", int, 7, min=1, help="query window side (clamped to smaller maps)"),
        Param("expand_size", int, 3, min=0, help="width of the fine ring around each window (0: none)"),
        Param("focal_level", int, 2, min=1, help="levels including the fine one: 2 = fine + one pooled"),
        Param("focal_window", int, 0, min=0, help="odd side of the pooled region; 0: released 7/5/3/1 by stage"),
        Param("focal_pool", str, "fc", choices=POOLS, help="sub-window pooling: learned linear, mean, depthwise conv"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
    ),
    paper="Focal Transformer, Yang et al., NeurIPS 2021",
    check=_check,
)
def focal(ctx: BlockContext, *, focal_window: int, **params: Any) -> nn.Module:
    # The schema is the one list of the block's arguments: they pass through unchanged.
    if not focal_window:
        focal_window = RELEASED_FOCAL_WINDOWS[min(ctx.stage_index, len(RELEASED_FOCAL_WINDOWS) - 1)]
    return FocalBlock(ctx.dim, resolution=ctx.resolution, drop_path=ctx.drop_path, focal_window=focal_window, **params)
