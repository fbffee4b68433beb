"""Classification heads: norm, pooling (average or class token) and a linear classifier, optionally
with a pre-logits hidden layer (as CMT's 1280-wide projection, Guo et al., CVPR 2022).
"""
from __future__ import annotations

from typing import Any

import torch
from timm.layers import get_act_layer
from timm.layers.typing import LayerType

# ResMLP's Affine "norm" exists only in timm.models (timm.layers has no per-channel affine layer).
from timm.models.mlp_mixer import Affine
from torch import nn

from archbench.blocks._common import ACT_NAMES, ACTS
from archbench.registry import Param, TokenState, register


class LinearHead(nn.Module):
    """Pyramid: LN over channels, global average pool, [hidden], linear.
    Isotropic: LN over tokens, class token or mean of patch tokens, [hidden], linear."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        layout: str,
        pool: str,
        norm: str,
        norm_eps: float,
        hidden_dim: int,
        hidden_act: LayerType,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.pool = pool
        if norm == "layernorm":
            self.norm: nn.Module = nn.LayerNorm(in_dim, eps=norm_eps)
        elif norm == "batchnorm":
            self.norm = nn.BatchNorm1d(in_dim, eps=norm_eps)
        elif norm == "affine":  # ResMLP's per-channel scale and shift (no statistics)
            self.norm = Affine(in_dim)
        else:
            self.norm = nn.Identity()
        self.is_batchnorm = norm == "batchnorm"
        if hidden_dim:
            self.pre_logits: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden_dim), get_act_layer(hidden_act)())
            in_dim = hidden_dim
        else:
            self.pre_logits = nn.Identity()
        self.fc = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()

    def pooled(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:
        if self.layout == "pyramid":
            x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
            prefix = 0
        else:
            prefix = tokens.num_prefix_tokens if tokens is not None else 0
        if self.is_batchnorm:  # BN normalises pooled features (ResNet/CMT style)
            return self.norm(x[:, prefix:].mean(1) if self.pool == "avg" else x[:, 0])
        x = self.norm(x)
        if self.pool == "cls":
            if prefix == 0:
                raise RuntimeError("pool='cls' needs a class token (tokens.cls_token: true)")
            return x[:, 0]
        return x[:, prefix:].mean(1)

    def forward(self, x: torch.Tensor, tokens: Any = None) -> torch.Tensor:
        return self.fc(self.pre_logits(self.pooled(x, tokens)))


@register(
    "head",
    "linear",
    params=(
        Param("pool", str, "avg", choices=("avg", "cls")),
        Param("norm", str, "layernorm", choices=("layernorm", "batchnorm", "affine", "none")),
        Param("norm_eps", float, 1e-5, min=0.0),
        Param("hidden_dim", int, 0, min=0, help="width of a pre-logits layer (0: none)"),
        Param("hidden_act", str, "gelu", choices=ACTS),
    ),
    layouts=("pyramid", "isotropic"),
    paper="ViT, Dosovitskiy et al., ICLR 2021; Swin, Liu et al., ICCV 2021",
)
def linear(in_dim: int, num_classes: int, *, layout: str, hidden_act: str, **params: Any) -> nn.Module:
    return LinearHead(in_dim, num_classes, layout=layout, **params, hidden_act=ACT_NAMES[hidden_act])
