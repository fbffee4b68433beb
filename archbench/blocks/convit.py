"""ConViT's gated positional self-attention (GPSA) block, on any patch grid (d'Ascoli et al.,
"ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases", ICML 2021).
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType

# GPSA exists only in timm.models (timm.layers has no gated positional attention); subclassed so its
# parameters, locality init and parity with timm's ConViT stay exactly timm's.
from timm.models.convit import GPSA
from torch import nn

from archbench.blocks._common import KeepsAttention, divisible_by_heads
from archbench.registry import BlockContext, Param, SpecError, TokenState, register


def relative_indices(hw: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, N, N, 3) with (Δx, Δy, Δx² + Δy²) between patches of an h × w grid in row-major order.

    Same layout as timm's ``GPSA.get_rel_indices`` for a square grid, written for any h × w.
    """
    h, w = hw
    pos = torch.arange(h * w, device=device)
    rows, cols = (pos // w).to(dtype), (pos % w).to(dtype)  # (N,)
    dx = cols[None, :] - cols[:, None]  # (N, N): key column - query column
    dy = rows[None, :] - rows[:, None]
    return torch.stack([dx, dy, dx**2 + dy**2], dim=-1).unsqueeze(0)


class GridGPSA(KeepsAttention, GPSA):
    """timm's GPSA whose positional scores come from the grid of this forward pass (not √N); its
    gated, renormalised map joins the attention-map protocol (:class:`KeepsAttention`)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, locality_strength: float) -> None:
        super().__init__(dim, num_heads=heads, qkv_bias=qkv_bias, locality_strength=locality_strength)
        # A plain dict rather than timm's buffer: it is keyed by the grid, so any size can be cached.
        self._rel_cache: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:  # type: ignore[override]
        B, N, C = x.shape
        if hw is None:
            side = int(N**0.5)
            hw = (side, side)
        if hw[0] * hw[1] != N:
            raise ValueError(f"GPSA got {N} tokens for a {hw[0]}x{hw[1]} grid (class tokens join after GPSA)")
        key = (hw, str(x.device), x.dtype)
        if key not in self._rel_cache:
            self._rel_cache[key] = relative_indices(hw, x.device, x.dtype)
        self.rel_indices = self._rel_cache[key]  # read by timm's get_attention
        attn = self.get_attention(x)  # (B, heads, N, N): gated mix of content and positional scores
        if self.keep_attention:
            self.keep_map(attn, 0, hw)  # GPSA runs before the class token joins
        v = self.v(x).reshape(B, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # (B, heads, N, d)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)

    def init_weights(self) -> None:
        # The locality prior (v = identity, positional heads centred on a kernel grid) must survive
        # the builder's generic init, so it is re-applied last, as timm's ConVit does after _init_weights.
        with torch.no_grad():
            self.local_init()


class GPSABlock(nn.Module):
    """Pre-norm block: GPSA then MLP, on the isotropic (B, N, C) interface."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        locality_strength: float,
        drop_path: float,
        norm_layer: LayerType = partial(nn.LayerNorm, eps=1e-6),
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.norm1 = norm_layer(dim)
        self.attn = GridGPSA(dim, heads, qkv_bias, locality_strength)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))

    def forward(self, x: torch.Tensor, tokens: TokenState) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), tokens.hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@register(
    "block",
    "gpsa",
    params=(
        Param("heads", int, min=1, help="attention heads; ConViT uses dim = 48 × heads"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, False),
        Param("locality_strength", float, 1.0, min=0.0, help="scale of the initial positional attention"),
    ),
    layouts=("isotropic",),
    paper="ConViT, d'Ascoli et al., ICML 2021",
    check=divisible_by_heads,
)
def gpsa(ctx: BlockContext, *, heads: int, mlp_ratio: float, qkv_bias: bool, locality_strength: float) -> nn.Module:
    if ctx.num_prefix_tokens:
        # GPSA's positional scores are defined between patches only; ConViT adds the class token after.
        raise SpecError("tokens.cls_token_stage", "gpsa blocks must come before the class token joins")
    return GPSABlock(ctx.dim, heads, mlp_ratio, qkv_bias, locality_strength, ctx.drop_path)
