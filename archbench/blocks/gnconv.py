"""HorNet's recursive gated convolution block, gnConv with a 7×7 depthwise or global-local filter
(Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive Gated Convolutions", NeurIPS 2022).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, LayerScale, LayerScale2d, Mlp, get_act_layer, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import init_convs_trunc_normal
from archbench.registry import BlockContext, Param, register

FILTERS = ("dwconv", "gf")


def order_dims(dim: int, order: int) -> list[int]:
    """Widths of the n gating orders, narrowest first: C/2^(n-1), …, C/2, C."""
    return [dim // 2**i for i in range(order)][::-1]


class GlobalLocalFilter(nn.Module):
    """HorNet's GF spatial mixer: half the channels through a 3×3 depthwise conv, half through a
    learnable global filter in the rFFT domain, between two channel LayerNorms.

    The filter is sized for ``resolution`` (a (H, W) map has an (H, W//2+1) half spectrum) and
    resampled bilinearly, as HorNet does, when a forward pass meets another map size.
    """

    def __init__(self, dim: int, resolution: tuple[int, int]) -> None:
        super().__init__()
        half = dim // 2
        self.pre_norm = LayerNorm2d(dim, eps=1e-6)
        self.local = nn.Conv2d(half, half, 3, padding=1, groups=half, bias=False)
        height, width = resolution
        # Real and imaginary parts in a trailing axis of 2, so optimisers see a real tensor.
        self.complex_weight = nn.Parameter(torch.zeros(half, height, width // 2 + 1, 2))
        self.post_norm = LayerNorm2d(dim, eps=1e-6)
        self.reset_filter()

    def reset_filter(self) -> None:
        trunc_normal_(self.complex_weight, std=0.02)

    def filter_for(self, spectrum_hw: tuple[int, int]) -> torch.Tensor:
        """The complex filter at the spectrum size of this forward pass."""
        weight = self.complex_weight
        if tuple(weight.shape[1:3]) != tuple(spectrum_hw):
            weight = weight.permute(3, 0, 1, 2)  # (2, C/2, h, w): real/imag as the batch of interpolate
            weight = F.interpolate(weight, size=spectrum_hw, mode="bilinear", align_corners=True)
            weight = weight.permute(1, 2, 3, 0)  # (C/2, H, W//2+1, 2)
        return torch.view_as_complex(weight.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_norm(x)
        local, glob = x.chunk(2, dim=1)  # 2 × (B, C/2, H, W)
        B, C, H, W = glob.shape
        local = self.local(local)
        # FFTs run in float32 (half-precision FFTs need power-of-two sizes).
        spectrum = torch.fft.rfft2(glob.float(), dim=(2, 3), norm="ortho")  # (B, C/2, H, W//2+1) complex
        spectrum = spectrum * self.filter_for((spectrum.shape[2], spectrum.shape[3]))
        glob = torch.fft.irfft2(spectrum, s=(H, W), dim=(2, 3), norm="ortho").to(local.dtype)
        # Interleave local/global channels (l0, g0, l1, g1, …) as HorNet does, so weights port.
        x = torch.stack([local, glob], dim=2).reshape(B, 2 * C, H, W)
        return self.post_norm(x)


class GnConv(nn.Module):
    """Recursive gated convolution of order n: one 1×1 projection gives a gate and n spatially mixed
    branches; the gate is multiplied with each branch in turn, widening C/2^(n-1) → C via 1×1 convs.

    Args:
        dim: channels in and out.
        order: interaction order n; ``dim`` must be divisible by 2^(n-1).
        spatial: the depthwise mixer applied to all n branches at once (sum of the order widths).
        scale: multiplier on the mixer's output (HorNet: 1/3), keeping the products' variance small.
    """

    def __init__(self, dim: int, order: int, spatial: nn.Module, scale: float) -> None:
        super().__init__()
        self.dims = order_dims(dim, order)
        self.scale = scale
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.spatial = spatial
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, branches = self.proj_in(x).split((self.dims[0], sum(self.dims)), dim=1)  # (B, C/2^(n-1), H, W), (B, ΣC_k, H, W)
        branches = (self.spatial(branches) * self.scale).split(self.dims, dim=1)
        x = gate * branches[0]
        for pw, branch in zip(self.pws, branches[1:]):
            x = pw(x) * branch  # (B, C_{k+1}, H, W)
        return self.proj_out(x)


class HorNetBlock(nn.Module):
    """LN → gnConv → layer scale → residual, then LN → MLP → layer scale → residual (NCHW in and out).

    As in HorNet, the first norm works on channels of the NCHW map (``norm_layer``) and the MLP
    runs channels-last (``mlp_norm_layer``).
    """

    def __init__(
        self,
        dim: int,
        gnconv: GnConv,
        mlp_ratio: float,
        layer_scale: float,
        drop_path: float,
        norm_layer: LayerType = partial(LayerNorm2d, eps=1e-6),
        mlp_norm_layer: LayerType = partial(nn.LayerNorm, eps=1e-6),
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        self.layer_scale = layer_scale
        self.norm1 = get_norm_layer(norm_layer)(dim)
        self.gnconv = gnconv
        self.gamma1 = LayerScale2d(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.norm2 = get_norm_layer(mlp_norm_layer)(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.gamma2 = LayerScale(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def init_weights(self) -> None:
        init_convs_trunc_normal(self)
        for module in self.modules():
            if isinstance(module, (LayerScale, LayerScale2d)):
                module.reset_parameters()
            elif isinstance(module, GlobalLocalFilter):
                module.reset_filter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1(self.gnconv(self.norm1(x))))
        y = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.gamma2(self.mlp(self.norm2(y)))
        return x + self.drop_path(y.permute(0, 3, 1, 2))  # (B, C, H, W)


def _check(params: dict, dim: int) -> str | None:
    order, kernel = params["order"], params["kernel"]
    if dim % 2 ** (order - 1):
        return f"dim {dim} is not divisible by 2^(order-1) = {2 ** (order - 1)}"
    if kernel % 2 == 0:
        return f"kernel must be odd to keep the map size, got {kernel}"
    if params["filter"] == "gf" and sum(order_dims(dim, order)) % 2:
        return f"filter 'gf' splits {sum(order_dims(dim, order))} channels in halves: make dim / 2^(order-1) even"
    return None


@register(
    "block",
    "gnconv",
    params=(
        Param("order", int, min=1, help="interaction order n (HorNet stages: 2, 3, 4, 5)"),
        Param("kernel", int, 7, min=1, help="depthwise kernel of the 'dwconv' filter"),
        Param("filter", str, "dwconv", choices=FILTERS, help="spatial mixer: depthwise conv or global-local filter (GF)"),
        Param("scale", float, 1.0 / 3.0, min=0.0, help="multiplier on the filter output"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("layer_scale", float, 1e-6, min=0.0, help="LayerScale init; 0 disables it"),
    ),
    paper="HorNet, Rao et al., NeurIPS 2022",
    check=_check,
)
def gnconv(ctx: BlockContext, *, order: int, kernel: int, filter: str, scale: float, mlp_ratio: float, layer_scale: float) -> nn.Module:
    width = sum(order_dims(ctx.dim, order))
    if filter == "gf":
        spatial: nn.Module = GlobalLocalFilter(width, ctx.resolution)
    else:
        spatial = nn.Conv2d(width, width, kernel, padding=kernel // 2, groups=width)
    mixer = GnConv(ctx.dim, order, spatial, scale)
    return HorNetBlock(ctx.dim, mixer, mlp_ratio, layer_scale, ctx.drop_path)
