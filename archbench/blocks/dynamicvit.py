"""Dynamic token sparsification for isotropic ViTs (Rao et al., "DynamicViT: Efficient Vision
Transformers with Dynamic Token Sparsification", NeurIPS 2021): score predictors prune tokens by stage.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import divisible_by_heads
from archbench.blocks.vit import MHSABlock
from archbench.registry import BlockContext, Param, TokenState, register

_PAPER = "DynamicViT, Rao et al., NeurIPS 2021"
# The release's weight of the keep-ratio loss for DeiT (main.py --ratio_weight default).
RATIO_WEIGHT = 2.0
VIT_NORM = partial(nn.LayerNorm, eps=1e-6)  # DeiT's


class TokenPredictor(nn.Module):
    """DynamicViT's prediction module: per-token features (LN, Linear, GELU) whose second half is
    average-pooled over the kept tokens (global context) and concatenated back to the first half
    (local), then an MLP D -> D/2 -> D/4 -> 2 gives log-probabilities of (keep, drop)."""

    def __init__(self, dim: int, norm_layer: LayerType = nn.LayerNorm, act_layer: LayerType = nn.GELU) -> None:
        super().__init__()
        act_layer = get_act_layer(act_layer)
        self.in_conv = nn.Sequential(get_norm_layer(norm_layer)(dim), nn.Linear(dim, dim), act_layer())
        self.out_conv = nn.Sequential(
            nn.Linear(dim, dim // 2),
            act_layer(),
            nn.Linear(dim // 2, dim // 4),
            act_layer(),
            nn.Linear(dim // 4, 2),
            nn.LogSoftmax(dim=-1),
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, N, C) patch tokens and their (B, N, 1) keep mask -> (B, N, 2) log-probabilities."""
        x = self.in_conv(x)
        half = x.shape[-1] // 2
        local, pooled = x[..., :half], x[..., half:]
        # Clamped: a sample whose Gumbel draws dropped every token would divide 0 by 0.
        pooled = (pooled * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1e-6)  # (B, 1, C/2)
        return self.out_conv(torch.cat([local, pooled.expand_as(local)], dim=-1))


def softmax_with_policy(logits: torch.Tensor, policy: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Softmax over keys where a dropped key (policy 0) gets no weight, except from itself (so a
    dropped query's row stays defined): the paper's attention masking (Eq. 6). Multiplicative in the
    policy, so the straight-through Gumbel gradient reaches the predictor."""
    n = policy.shape[1]
    keep = policy.reshape(policy.shape[0], 1, 1, n)  # (B, 1, 1, N) over keys
    eye = torch.eye(n, dtype=keep.dtype, device=keep.device)
    keep = keep + (1.0 - keep) * eye  # (B, 1, N, N)
    weights = (logits - logits.amax(-1, keepdim=True)).exp() * keep
    return (weights + eps / n) / (weights.sum(-1, keepdim=True) + eps)


class DynamicViTBlock(MHSABlock):
    """timm's ViT block that may first prune tokens. A block at a pruning location scores the patch
    tokens; in training it samples a hard keep decision by Gumbel-softmax and hands it on as the
    trunk's policy (attention masking, nothing is dropped); in inference it keeps the
    ``int(N · keep_ratio ** level)`` best-scored patch tokens and really drops the rest.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        keep_ratio: float,
        level: int,
        num_levels: int,
        norm_layer: LayerType = VIT_NORM,
        act_layer: LayerType = nn.GELU,
    ) -> None:
        norm_layer, act_layer = get_norm_layer(norm_layer), get_act_layer(act_layer)
        super().__init__(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path, norm_layer=norm_layer, act_layer=act_layer)
        self.keep_ratio = keep_ratio
        self.level = level  # 0: no predictor here; k: the k-th pruning location of the stage
        self.num_levels = num_levels
        self.predictor = TokenPredictor(dim, act_layer=act_layer) if level else None
        self.kept_fraction: torch.Tensor | None = None  # (B,) of the last training forward

    def kept_tokens(self, num_patches: int) -> int:
        """Patch tokens left after this block's pruning, from the patch count the trunk started with."""
        return max(1, int(num_patches * self.keep_ratio**self.level))

    def prune(self, x: torch.Tensor, tokens: TokenState) -> torch.Tensor:
        assert self.predictor is not None
        prefix = tokens.num_prefix_tokens
        patches = x[:, prefix:]  # (B, N, C)
        B, N, C = patches.shape
        prev = tokens.policy[:, prefix:] if tokens.policy is not None else torch.ones_like(patches[..., :1])
        scores = self.predictor(patches, prev)  # (B, N, 2) log-probabilities (keep, drop)
        if self.training:
            decision = F.gumbel_softmax(scores, hard=True)[..., :1] * prev  # (B, N, 1), 0/1 with soft gradients
            self.kept_fraction = decision.mean((1, 2))
            tokens.policy = torch.cat([decision.new_ones(B, prefix, 1), decision], dim=1)
            return x
        keep = scores[..., 0].topk(self.kept_tokens(tokens.hw[0] * tokens.hw[1]), dim=1).indices  # (B, K)
        patches = patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, C))  # (B, K, C)
        return torch.cat([x[:, :prefix], patches], dim=1)

    def _masked_attention(self, x: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        attn = self.attn
        B, N, _ = x.shape
        q, k, v = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        weights = softmax_with_policy((q * attn.scale) @ k.transpose(-2, -1), policy)  # (B, h, N, N)
        out = (weights @ v).transpose(1, 2).reshape(B, N, -1)
        return attn.proj(attn.norm(out))

    def forward(self, x: torch.Tensor, tokens: TokenState | None = None) -> torch.Tensor:  # type: ignore[override]
        if tokens is None:
            return super().forward(x)
        if self.predictor is not None:
            x = self.prune(x, tokens)
        if not (self.training and tokens.policy is not None):
            return super().forward(x)
        x = x + self.drop_path1(self.ls1(self._masked_attention(self.norm1(x), tokens.policy)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The keep-ratio loss of this pruning location (squared gap between the fraction kept and
        ``keep_ratio ** level``, batch mean), weighted as the release does for DeiT; the training
        loop adds it. It also gets divided by the number of locations, as the release's mean."""
        if not self.training or self.kept_fraction is None:
            return None
        loss = (self.kept_fraction - self.keep_ratio**self.level).square().mean()
        self.kept_fraction = None  # one loss per forward
        return RATIO_WEIGHT * loss / self.num_levels


def pruning_locations(depth: int, levels: int) -> list[int]:
    """Block indices of a stage that prune first: ``depth · k // (levels + 1)`` for k = 1..levels,
    the release's [3, 6, 9] for DeiT (12 blocks) and [4, 8, 12] for LV-ViT-S (16); never block 0."""
    return sorted({depth * k // (levels + 1) for k in range(1, levels + 1)} - {0})


def _check(params: dict[str, Any], dim: int) -> str | None:
    if not 0.0 < params["keep_ratio"] <= 1.0:
        return f"keep_ratio must be in (0, 1], got {params['keep_ratio']}"
    return divisible_by_heads(params, dim)


@register(
    "block",
    "dynamicvit",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
        Param("keep_ratio", float, 0.7, min=0.0, help="ρ: the k-th pruning location keeps ρ^k of the patch tokens (1: dense)"),
        Param("levels", int, 3, min=1, help="pruning locations, evenly spaced in the stage (DeiT: blocks 3, 6, 9 of 12)"),
    ),
    layouts=("isotropic",),
    paper=_PAPER,
    check=_check,
)
def dynamicvit(ctx: BlockContext, *, heads: int, mlp_ratio: float, qkv_bias: bool, keep_ratio: float, levels: int) -> nn.Module:
    locations = pruning_locations(ctx.stage_depth, levels) if keep_ratio < 1.0 else []
    level = locations.index(ctx.block_index) + 1 if ctx.block_index in locations else 0
    return DynamicViTBlock(
        ctx.dim,
        heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_path=ctx.drop_path,
        keep_ratio=keep_ratio,
        level=level,
        num_levels=len(locations),
    )
