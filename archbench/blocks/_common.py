"""Small pieces shared by several block families: norm and activation lookup by name.

Specs name layers with strings ("layernorm", "gelu"); these map them to timm/torch modules.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d, trunc_normal_
from torch import nn

NORMS_2D = ("layernorm", "batchnorm", "groupnorm", "none")
ACTS = ("none", "relu", "relu6", "gelu", "silu", "hardswish")


def norm_2d(name: str, dim: int, eps: float | None = None) -> nn.Module:
    """A norm over the channels of an NCHW map."""
    if name == "layernorm":
        return LayerNorm2d(dim, eps=1e-6 if eps is None else eps)
    if name == "batchnorm":
        return nn.BatchNorm2d(dim, eps=1e-5 if eps is None else eps)
    if name == "groupnorm":  # GroupNorm(1): PoolFormer/MetaFormer's "layer norm" over C, H, W
        return nn.GroupNorm(1, dim, eps=1e-5 if eps is None else eps)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{name}'")


def act_layer(name: str) -> Callable[[], nn.Module]:
    """An activation class by name ("none" gives Identity)."""
    table: dict[str, Callable[[], nn.Module]] = {
        "none": nn.Identity,
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "hardswish": nn.Hardswish,
    }
    return table[name]


def divisible_by_heads(params: dict, dim: int) -> str | None:
    """Registry check for attention blocks: the width must split evenly into heads."""
    heads = params.get("heads", 1)
    if heads < 1:
        return f"heads must be >= 1, got {heads}"
    if dim % heads:
        return f"dim {dim} is not divisible by heads {heads}"
    return None


def pad_to_kernel(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Zero-pad an NCHW map at the bottom/right to at least ``kernel`` × ``kernel``, so a strided
    reduction (PVT/CMT keys and values) still yields one token on maps smaller than its kernel."""
    h, w = x.shape[-2:]
    if h >= kernel and w >= kernel:
        return x
    return F.pad(x, (0, max(kernel - w, 0), 0, max(kernel - h, 0)))


def init_convs_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal weights and zero biases for every Conv2d under ``module`` (HorNet and
    Hire-MLP initialise their convs this way; the builder's generic init covers Linear only)."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            trunc_normal_(conv.weight, std=std)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
