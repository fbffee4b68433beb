"""Multi-head self-attention blocks: ViT/DeiT's pre-norm block (Dosovitskiy et al., ICLR 2021;
Touvron et al., ICML 2021) and PVT v1's spatial-reduction attention for pyramids (Wang et al., ICCV 2021).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType

# timm's ViT block lives only in timm.models (timm.layers has Attention and Mlp, not the block);
# subclassed so DeiT's parameters and parity with timm stay exactly timm's.
from timm.models.vision_transformer import Block as TimmViTBlock
from torch import nn

from archbench.blocks._common import KeepsAttention, divisible_by_heads, pad_to_kernel
from archbench.registry import BlockContext, Param, TokenState, register


class MHSABlock(KeepsAttention, TimmViTBlock):
    """timm's ViT block (fused ``scaled_dot_product_attention``) on the isotropic token interface.

    The fused kernel never forms the attention map: with ``keep_attention`` on, q and k are
    recomputed from the same weights to keep it (:class:`KeepsAttention`).
    """

    def forward(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:  # type: ignore[override]
        if self.keep_attention:
            attn = self.attn
            B, N, _ = x.shape
            prefix = tokens.num_prefix_tokens if tokens is not None else 0
            hw = tokens.hw if tokens is not None else (N - prefix, 1)
            with torch.no_grad():  # a label, not a path for gradients
                qkv = attn.qkv(self.norm1(x)).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
                self.keep(attn.q_norm(qkv[0]), attn.k_norm(qkv[1]), attn.scale, prefix, hw)
        return super().forward(x)


class SpatialReductionAttention(nn.Module):
    """PVT's attention: queries from every position, keys/values from a map shrunk ``sr_ratio``× by a
    strided conv + LN, so global attention stays affordable at stride 4. ``sr_ratio`` 1 is plain MHSA."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, sr_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)
        source = x
        if self.sr_ratio > 1:
            grid = pad_to_kernel(x.transpose(1, 2).reshape(B, C, *hw), self.sr_ratio)
            source = self.norm(self.sr(grid).flatten(2).transpose(1, 2))  # (B, N / sr², C)
        k, v = self.kv(source).reshape(B, -1, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class SRABlock(nn.Module):
    """Pre-norm transformer block with spatial-reduction attention, NCHW in and out (pyramid stages)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        sr_ratio: int,
        drop_path: float,
        norm_layer: LayerType = partial(nn.LayerNorm, eps=1e-6),
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.norm1 = norm_layer(dim)
        self.attn = SpatialReductionAttention(dim, heads, qkv_bias, sr_ratio)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        t = t + self.drop_path(self.attn(self.norm1(t), (H, W)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(B, C, H, W)


@register(
    "block",
    "mhsa",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
        Param("layer_scale", float, 0.0, min=0.0, help="LayerScale init (CaiT); 0 disables it"),
        Param("sr_ratio", int, 1, min=1, help="pyramid only: PVT spatial reduction of keys/values"),
    ),
    layouts=("isotropic", "pyramid"),
    paper="ViT (Dosovitskiy et al., 2021), DeiT (Touvron et al., 2021); PVT (Wang et al., 2021)",
    check=divisible_by_heads,
)
def mhsa(ctx: BlockContext, *, heads: int, mlp_ratio: float, qkv_bias: bool, layer_scale: float, sr_ratio: int) -> nn.Module:
    if ctx.layout == "pyramid":
        return SRABlock(ctx.dim, heads, mlp_ratio, qkv_bias, sr_ratio, ctx.drop_path)
    return MHSABlock(
        ctx.dim,
        heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        init_values=layer_scale or None,
        drop_path=ctx.drop_path,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
    )
