"""Small pieces shared by several block families: spec names of norms and activations, the window
partition of Swin (Liu et al., ICCV 2021) and Focal (Yang et al., NeurIPS 2021), init helpers, and the
attention-map protocol that attention-aware data mixing reads (archbench.train.mixing).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

# A spec names norms over NCHW maps in its own words (kept stable: they are hashed into ArchSpecs);
# each stands for a timm.layers name, resolved by timm's public get_norm_layer ("": no norm).
NORM_2D_NAMES: dict[str, str] = {"layernorm": "layernorm2d", "batchnorm": "batchnorm2d", "groupnorm": "groupnorm1", "none": ""}
NORMS_2D = tuple(NORM_2D_NAMES)
# Activations are timm's own names (get_act_layer), with the spec's "none" for timm's "identity".
ACT_NAMES: dict[str, str] = {"none": "identity", "relu": "relu", "relu6": "relu6", "gelu": "gelu", "silu": "silu", "hardswish": "hardswish"}
ACTS = tuple(ACT_NAMES)


def create_norm(norm_layer: LayerType | None, dim: int, **kwargs: float) -> nn.Module:
    """``norm_layer`` (a timm.layers name, a class or a partial) over ``dim`` channels; None or ""
    gives Identity, so a block can take "no norm" as a layer type like any other."""
    layer = get_norm_layer(norm_layer)
    return nn.Identity() if layer is None else layer(dim, **kwargs)


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) -> (B·nW, wh·ww, C): non-overlapping windows in row-major order (H, W multiples).

    timm keeps its copy in ``timm.models.swin_transformer``, not in the public ``timm.layers``, so
    Swin's and Focal's blocks share this one.
    """
    B, H, W, C = x.shape
    x = x.view(B, H // window[0], window[0], W // window[1], window[1], C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window[0] * window[1], C)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B·nW, wh·ww, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window[0], W // window[1], window[0], window[1], C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


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


# ---- the attention-map protocol -------------------------------------------------------------------
@dataclass(frozen=True)
class AttentionMap:
    """One block's attention in one forward: ``probs`` (B, N, N) softmax probabilities averaged over
    heads (rows sum to 1, detached, float32) over ``prefix`` class tokens then the ``hw`` patch grid."""

    probs: torch.Tensor
    prefix: int
    hw: tuple[int, int]


class KeepsAttention:
    """Mixin of a block (or its attention module) whose token mixing is attention over all of its tokens.

    While ``keep_attention`` is True, every forward leaves the block's map in ``last_attention``;
    off (the default) the block computes nothing extra. Data mixing (TransMix, TL-Align, SMMix)
    reads blocks through this protocol only, so a block family joins by calling :meth:`keep`.
    """

    keep_attention: bool = False
    last_attention: AttentionMap | None = None

    def keep(self, q: torch.Tensor, k: torch.Tensor, scale: float, prefix: int, hw: tuple[int, int]) -> None:
        """Store softmax(q kᵀ · scale) averaged over heads, from q, k of shape (B, heads, N, d)."""
        with torch.no_grad():
            self.keep_map(((q.float() * scale) @ k.float().transpose(-2, -1)).softmax(dim=-1), prefix, hw)

    def keep_map(self, probs: torch.Tensor, prefix: int, hw: tuple[int, int]) -> None:
        """Store an explicit attention map (B, heads, N, N) whose rows sum to 1, averaged over heads."""
        self.last_attention = AttentionMap(probs.detach().float().mean(dim=1), prefix, hw)
