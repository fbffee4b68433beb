"""Refiner attention blocks and Refiner-ViT's convolutional stem (Zhou et al., "Refiner: Refining
Self-attention for Vision Transformers", arXiv 2106.03714; structure of zhoudaquan/Refiner_ViT).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
from timm.layers import DropPath, Mlp, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import divisible_by_heads
from archbench.registry import BlockContext, Param, TokenState, register


def _same_conv(channels_in: int, channels_out: int, kernel: int, groups: int = 1) -> nn.Module:
    """Stride-1 conv that keeps the map size, bias-free as in the release (TF-style "same" padding).

    Numeric padding rather than ``padding="same"``: the MAC counter sees ``aten::_convolution_mode``
    as an unknown op. Even kernels get the release's asymmetric split (extra row/column at the end).
    """
    if kernel % 2:
        return nn.Conv2d(channels_in, channels_out, kernel, padding=kernel // 2, groups=groups, bias=False)
    first = (kernel - 1) // 2
    return nn.Sequential(
        nn.ZeroPad2d((first, kernel - 1 - first, first, kernel - 1 - first)),
        nn.Conv2d(channels_in, channels_out, kernel, groups=groups, bias=False),
    )


class AttentionRefiner(nn.Module):
    """The release's ``DLA`` ("conv_exapnd"): heads are channels of the (N, N) attention maps.

    Expansion 1×1 heads -> expansion·heads (BN, ReLU6), depthwise k×k (BN, ReLU6), reduction 1×1 back
    to heads (BN), plus the identity. Expansion 1 skips the first 1×1, as the release does.
    """

    def __init__(self, heads: int, expansion: int, kernel: int) -> None:
        super().__init__()
        hidden = heads * expansion
        self.expand = (
            nn.Sequential(_same_conv(heads, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU6())
            if expansion != 1
            else nn.Identity()
        )
        self.local = nn.Sequential(_same_conv(hidden, hidden, kernel, groups=hidden), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.reduce = nn.Sequential(_same_conv(hidden, heads, 1), nn.BatchNorm2d(heads))

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        # attn: (B, heads, N, N) -> (B, expansion·heads, N, N) -> (B, heads, N, N)
        return attn + self.reduce(self.local(self.expand(attn)))


class RefinerAttention(nn.Module):
    """Multi-head attention whose (B, heads, N, N) map is formed explicitly so it can be refined.

    ``shared``: no queries or keys; the previous block's map is refined (then the extra BN and the
    q·k scale, as released) and applied to values from a V-only ``Linear(D, D)``; the map handed on
    is the incoming one. Otherwise softmax(q kᵀ / √d), plus ``scale`` × the map handed in by the
    previous block (the release chains maps this way), optionally refined; that map is handed on.

    A one-token map (N = 1: a proxy whose last stage is 1×1) is left unrefined. It carries nothing to
    refine, and the refiner's BatchNorms over a map that is the same for every image keep running
    statistics that drift toward zero variance, so eval mode amplifies rounding into garbage: a
    ``hybrid_vit`` proxy measured 83% accuracy in train mode and 5% in eval mode before this.
    """

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool, shared: bool, refine: bool, expansion: int, kernel: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.shared = shared
        if shared:
            self.v = nn.Linear(dim, dim, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if shared or refine:
            self.refiner = AttentionRefiner(heads, expansion, kernel)
            self.adapt_bn = nn.BatchNorm2d(heads)  # the release's extra BN after the refiner
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, prev_attn: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, C = x.shape
        if self.shared:
            if prev_attn is None:
                raise RuntimeError("a shared refiner block needs the previous block's attention map (tokens.attn)")
            attn = self.adapt_bn(self.refiner(prev_attn)) * self.scale if N > 1 else prev_attn  # (B, heads, N, N)
            v = self.v(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, N, d)
            handed_on = prev_attn
        else:
            q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 × (B, heads, N, d)
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)
            if prev_attn is not None:
                attn = attn + prev_attn * self.scale
            if hasattr(self, "refiner") and N > 1:
                attn = self.adapt_bn(self.refiner(attn))
            handed_on = attn
        out = (attn @ v).transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        return self.proj(out), handed_on


class RefinerBlock(nn.Module):
    """Refiner-ViT's pre-norm block on the isotropic (B, N, C) interface.

    As released: branch inputs are scaled by 0.5 and branch outputs divided by it, and the MLP output
    has a learnable per-channel scale initialised to 1e-5. The attention map travels in
    ``tokens.attn``; the first block of a stage starts a fresh chain, so maps never cross stages.
    """

    residual_scale = 0.5  # the release's ``adjust_ratio``
    mlp_scale_init = 1e-5  # the release's ``scale_channel`` initial value

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float,
        qkv_bias: bool,
        shared: bool,
        refine: bool,
        expansion: int,
        kernel: int,
        starts_chain: bool,
        drop_path: float,
        norm_layer: LayerType = partial(nn.LayerNorm, eps=1e-6),
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.starts_chain = starts_chain
        self.norm1 = norm_layer(dim)
        self.attn = RefinerAttention(dim, heads, qkv_bias=qkv_bias, shared=shared, refine=refine, expansion=expansion, kernel=kernel)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.mlp_scale = nn.Parameter(torch.full((dim,), self.mlp_scale_init))

    def forward(self, x: torch.Tensor, tokens: TokenState) -> torch.Tensor:
        prev_attn = None if self.starts_chain else tokens.attn
        r = self.residual_scale
        out, tokens.attn = self.attn(self.norm1(x * r), prev_attn)
        x = x + self.drop_path(out / r)
        x = x + self.drop_path(self.mlp_scale * self.mlp(self.norm2(x * r))) / r
        return x

    def init_weights(self) -> None:
        # The builder's generic init leaves plain Parameters alone; reset anyway so re-init is exact.
        with torch.no_grad():
            self.mlp_scale.fill_(self.mlp_scale_init)


class RefinerStage(nn.Module):
    """Pyramid layout: a whole stage of refiner blocks in one module, NCHW in and out.

    The builder calls the block factory once per position; the stage's first position gets this
    module with all ``stage_depth`` blocks, the others an ``nn.Identity``. One TokenState per
    forward carries the attention map from block to block, exactly as in the isotropic trunk, and
    it never leaves the stage. Every inner block uses the first position's drop-path rate.
    """

    def __init__(self, blocks: list[RefinerBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = TokenState(hw=(H, W))
        for block in self.blocks:
            t = block(t, tokens)
        return t.transpose(1, 2).reshape(B, C, H, W)


def _refiner_block(ctx: BlockContext, *, heads: int, expansion: int, kernel: int, mlp_ratio: float, qkv_bias: bool, share: bool) -> RefinerBlock:
    # share=True is the released alternation: odd positions in a stage reuse the map before them
    # (apply_transform all False there); share=False refines each block's own map instead.
    shared = share and ctx.block_index % 2 == 1
    return RefinerBlock(
        ctx.dim,
        heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        shared=shared,
        refine=not share,
        expansion=expansion,
        kernel=kernel,
        starts_chain=ctx.block_index == 0,
        drop_path=ctx.drop_path,
    )


@register(
    "block",
    "refiner",
    params=(
        Param("heads", int, min=1, help="attention heads (the refiner's channels); dim must divide evenly"),
        Param("expansion", int, 3, min=1, help="attention expansion: heads -> expansion·heads before the conv"),
        Param("kernel", int, 3, min=1, help="depthwise conv kernel over the attention maps"),
        Param("mlp_ratio", float, 3.0, min=0.25),
        Param("qkv_bias", bool, True),
        Param("share", bool, True, help="released alternation: every second block refines the previous map, no Q/K"),
    ),
    layouts=("isotropic", "pyramid"),
    paper="Refiner: Refining Self-attention for Vision Transformers, Zhou et al., arXiv 2106.03714",
    check=divisible_by_heads,
)
def refiner(ctx: BlockContext, *, heads: int, expansion: int, kernel: int, mlp_ratio: float, qkv_bias: bool, share: bool) -> nn.Module:
    params = dict(heads=heads, expansion=expansion, kernel=kernel, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, share=share)
    if ctx.layout == "isotropic":
        return _refiner_block(ctx, **params)
    if ctx.block_index > 0:
        return nn.Identity()  # built inside the stage's first position (see RefinerStage)
    return RefinerStage([_refiner_block(replace(ctx, block_index=i), **params) for i in range(ctx.stage_depth)])


class RefinerConvStem(nn.Module):
    """Refiner-ViT's ``PatchEmbed_cnn`` (after T2T-ViT): three convs with BN and ReLU at stride 2,
    then an 8×8/8 projection to the width; stride 16 in all."""

    stride = 16

    def __init__(self, in_chans: int, out_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 32, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.act = nn.ReLU()
        self.proj = nn.Conv2d(128, out_dim, 8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv1(x)))  # (B, 32, H/2, W/2)
        x = self.act(self.bn2(self.conv2(x)))  # (B, 64, H/2, W/2)
        x = self.act(self.bn3(self.conv3(x)))  # (B, 128, H/2, W/2)
        return self.proj(x)  # (B, D, H/16, W/16)


@register(
    "stem",
    "refiner_cnn",
    layouts=("isotropic", "pyramid"),
    paper="Refiner: Refining Self-attention for Vision Transformers, Zhou et al., arXiv 2106.03714",
)
def refiner_cnn(in_chans: int, out_dim: int) -> nn.Module:
    return RefinerConvStem(in_chans, out_dim)
