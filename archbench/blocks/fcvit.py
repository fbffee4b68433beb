"""FCViT block: query-irrelevant global context fused into large depthwise convolutions (Ma et al.,
"A Close Look at Spatial Modeling: From Attention to Convolution", arXiv 2212.12552; ma-xu/FCViT).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import DropPath, GroupNorm1, get_act_layer, get_norm_layer
from timm.layers.typing import LayerType
from torch import nn

from archbench.registry import BlockContext, Param, register


class GlobalContext(nn.Module):
    """FCViT's weighted global context: what self-attention computes when every query sees the same map.

    The channels split into ``groups`` heads; each position's similarity to the head's global average
    (a dot product, scaled by 1/√d) is standardised over heads and positions and given a learnable
    per-head affine; it weights a context vector from the pooled features passed through a bottleneck
    (``compete``: fc C -> 2·C/r, max of the two halves, fc C/r -> C; else fc-GELU-fc).
    Returns a (B, C, H, W) map that the token mixer adds to its input.
    """

    epsilon = 1e-5

    def __init__(self, dim: int, groups: int, reduction: int, compete: bool, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.groups = groups
        self.scale = (dim // groups) ** -0.5
        hidden = dim // reduction
        self.compete = compete
        if compete:
            self.fc1 = nn.Linear(dim, 2 * hidden)
            self.fc2 = nn.Linear(hidden, dim)
        else:
            self.fc = nn.Sequential(nn.Linear(dim, hidden), act_layer(), nn.Linear(hidden, dim))
        self.rescale_weight = nn.Parameter(torch.ones(groups))
        self.rescale_bias = nn.Parameter(torch.zeros(groups))

    def context(self, pooled: torch.Tensor) -> torch.Tensor:
        if not self.compete:
            return self.fc(pooled)
        pieces = self.fc1(pooled).reshape(pooled.shape[0], 2, -1)  # (B, 2, C/r): two competing halves
        return self.fc2(pieces.amax(dim=1))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = x.reshape(B, self.groups, C // self.groups, H * W)  # (B, G, d, N)
        pooled = tokens.mean(dim=-1, keepdim=True)  # (B, G, d, 1)
        sim = (tokens.transpose(-2, -1) @ pooled).squeeze(-1) * self.scale  # (B, G, N)
        std, mean = torch.std_mean(sim, dim=(1, 2), keepdim=True)
        sim = (sim - mean) / (std + self.epsilon)
        sim = sim * self.rescale_weight[None, :, None] + self.rescale_bias[None, :, None]
        gc = self.context(pooled.reshape(B, C)).reshape(B, self.groups, C // self.groups, 1)  # (B, G, d, 1)
        return (sim.unsqueeze(2) * gc).reshape(B, C, H, W)


class TokenMixer(nn.Module):
    """``mixes`` rounds of: add the global context, depthwise k×k, 1×1 bottleneck (C -> max(C/f, m)
    -> C, GELU between), GELU. The release uses two rounds with 11×11 kernels."""

    def __init__(
        self,
        dim: int,
        *,
        mixes: int,
        kernel: int,
        groups: int,
        gc_reduction: int,
        compete: bool,
        fc_factor: int,
        fc_min: int,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        bottleneck = max(dim // fc_factor, fc_min)
        self.gcs = nn.ModuleList(GlobalContext(dim, groups, gc_reduction, compete, act_layer) for _ in range(mixes))
        self.dws = nn.ModuleList(nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim) for _ in range(mixes))
        self.fcs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, bottleneck, 1), act_layer(), nn.Conv2d(bottleneck, dim, 1))
            if fc_factor > 1
            else nn.Conv2d(dim, dim, 1)
            for _ in range(mixes)
        )
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for gc, dw, fc in zip(self.gcs, self.dws, self.fcs):
            x = x + gc(x)
            x = self.act(fc(dw(x)))
        return x


class ChannelMixer(nn.Module):
    """1×1 expansion, depthwise k×k (no activation between, as released), GELU, 1×1 back."""

    def __init__(self, dim: int, hidden: int, kernel: int, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dwconv(self.fc1(x)))  # (B, hidden, H, W)
        return self.fc2(x)  # (B, C, H, W)


class FCViTBlock(nn.Module):
    """MetaFormer block: GroupNorm(1) -> token mixer and GroupNorm(1) -> channel mixer, each residual
    with layer scale; NCHW in and out, any spatial size."""

    def __init__(
        self,
        dim: int,
        *,
        mlp_ratio: float,
        mlp_kernel: int,
        layer_scale: float,
        drop_path: float = 0.0,
        norm_layer: LayerType = GroupNorm1,
        act_layer: LayerType = nn.GELU,
        **mixer: int | bool,
    ) -> None:
        super().__init__()
        norm_layer, act_layer = get_norm_layer(norm_layer), get_act_layer(act_layer)
        self.layer_scale_init = layer_scale
        self.norm1 = norm_layer(dim)
        self.token_mixer = TokenMixer(dim, act_layer=act_layer, **mixer)  # type: ignore[arg-type]
        self.norm2 = norm_layer(dim)
        self.channel_mixer = ChannelMixer(dim, int(dim * mlp_ratio), mlp_kernel, act_layer)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.channel_mixer(self.norm2(x)))
        return x

    def init_weights(self) -> None:
        # The release initialises the mixers' convolutions N(0, 2 / fan_out) (fan_out over groups),
        # which the builder's generic init does not touch; layer scale restarts at its init value.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.layer_scale_1.fill_(self.layer_scale_init)
            self.layer_scale_2.fill_(self.layer_scale_init)


def _check(params: dict, dim: int) -> str | None:
    if dim % params["groups"]:
        return f"dim {dim} is not divisible by groups {params['groups']}"
    for key in ("kernel", "mlp_kernel"):
        if params[key] % 2 == 0:
            return f"{key} must be odd to keep the map size, got {params[key]}"
    if dim < params["gc_reduction"]:
        return f"dim {dim} is smaller than gc_reduction {params['gc_reduction']}"
    return None


@register(
    "block",
    "fcvit",
    params=(
        Param("mlp_ratio", float, 4.0, min=0.25, help="channel-mixer expansion (released [8, 8, 4, 4] by stage)"),
        Param("kernel", int, 11, min=1, help="depthwise token-mixing kernel (mix_size_1 = mix_size_2)"),
        Param("mixes", int, 2, choices=(1, 2), help="token-mixing rounds (2: useSecondTokenMix)"),
        Param("groups", int, 8, min=1, help="heads of the global-context similarity"),
        Param("gc_reduction", int, 8, min=1, help="global-context bottleneck reduction"),
        Param("compete", bool, True, help="competition (max of two halves) bottleneck, else fc-GELU-fc"),
        Param("fc_factor", int, 8, min=1, help="1x1 bottleneck after each dw conv: C -> max(C/f, fc_min) -> C"),
        Param("fc_min", int, 16, min=1),
        Param("mlp_kernel", int, 3, min=1, help="depthwise conv inside the channel mixer"),
        Param("layer_scale", float, 1e-5, min=0.0),
    ),
    paper="A Close Look at Spatial Modeling: From Attention to Convolution (FCViT), Ma et al., arXiv 2212.12552",
    check=_check,
)
def fcvit(ctx: BlockContext, **params: Any) -> nn.Module:
    # The schema is the one list of the block's arguments: they pass through unchanged.
    return FCViTBlock(ctx.dim, drop_path=ctx.drop_path, **params)
