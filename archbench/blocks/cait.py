"""CaiT's talking-heads self-attention block with LayerScale and its class-attention head (Touvron et
al., "Going deeper with Image Transformers", ICCV 2021); both compose timm's own CaiT layers.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
from timm.layers import trunc_normal_

# CaiT's talking-heads and class-attention blocks exist only in timm.models (timm.layers has neither);
# composed as they are, so parameters and parity with timm's CaiT stay exactly timm's.
from timm.models.cait import LayerScaleBlock, LayerScaleBlockClassAttn
from torch import nn

from archbench.blocks._common import divisible_by_heads
from archbench.registry import BlockContext, Param, TokenState, register

_PAPER = "CaiT: Going deeper with Image Transformers, Touvron et al., ICCV 2021"


def _check(params: dict[str, Any], dim: int) -> str | None:
    if params["layer_scale"] <= 0:
        return f"layer_scale must be > 0 (CaiT always scales its residual branches), got {params['layer_scale']}"
    return divisible_by_heads(params, dim)


class TalkingHeadsBlock(LayerScaleBlock):
    """timm's CaiT block: pre-norm talking-heads attention (heads mixed by a linear map before and
    after the softmax, so the attention map is explicit and counted as matmul) and an MLP, each
    residual branch scaled by a learned per-channel LayerScale."""

    def forward(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)


@register(
    "block",
    "talking_heads",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
        Param("layer_scale", float, 1e-5, help="LayerScale init (CaiT: 1e-5 for XXS/XS/S-24, 1e-6 deeper)"),
    ),
    layouts=("isotropic",),
    paper=_PAPER,
    check=_check,
)
def talking_heads(ctx: BlockContext, *, heads: int, mlp_ratio: float, qkv_bias: bool, layer_scale: float) -> nn.Module:
    return TalkingHeadsBlock(
        ctx.dim,
        heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_path=ctx.drop_path,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        init_values=layer_scale,
    )


class ClassAttentionHead(nn.Module):
    """CaiT's late class embedding: a class token joins only here, and ``depth`` class-attention
    blocks update it alone (it attends to itself and the frozen patch tokens); then LN and linear.

    Pyramid inputs (B, C, H, W) are read as H·W tokens, so the head also fits hybrid trunks.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        layout: str,
        depth: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        layer_scale: float,
        norm_eps: float,
    ) -> None:
        super().__init__()
        self.layout = layout
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, in_dim))
        self.blocks = nn.ModuleList(
            LayerScaleBlockClassAttn(
                in_dim, heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=norm_layer, init_values=layer_scale
            )
            for _ in range(depth)
        )
        self.norm = norm_layer(in_dim)
        self.fc = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:
        if self.layout == "pyramid":
            x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        elif tokens is not None and tokens.num_prefix_tokens:
            x = x[:, tokens.num_prefix_tokens :]  # the trunk's own class tokens are not patches
        # repeat, not expand: under no_grad an expanded view of a parameter has no grad_fn, which
        # torch's FlopCounterMode (module tracker) rejects when it is handed to a submodule.
        cls = self.cls_token.repeat(x.shape[0], 1, 1)  # (B, 1, C)
        for block in self.blocks:
            cls = block(x, cls)
        # timm normalises [cls, patches] jointly; LN is per token, so the class token's row is the same.
        return self.fc(self.norm(cls[:, 0]))


@register(
    "head",
    "class_attention",
    params=(
        Param("depth", int, 2, min=1, help="class-attention blocks"),
        Param("heads", int, min=1, help="attention heads; in_dim must divide evenly"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
        Param("layer_scale", float, 1e-5, help="LayerScale init of the class-attention blocks"),
        Param("norm_eps", float, 1e-6, min=0.0),
    ),
    layouts=("isotropic", "pyramid"),
    paper=_PAPER,
    check=_check,
)
def class_attention(in_dim: int, num_classes: int, *, layout: str, **params: Any) -> nn.Module:
    # The schema is the one list of the head's arguments: they pass through unchanged.
    return ClassAttentionHead(in_dim, num_classes, layout=layout, **params)
