"""Regional-to-local attention (Chen et al., "RegionViT: Regional-to-Local Attention for Vision
Transformers", ICLR 2022): its two-stream stem, R2L block, shared-weight downsampling and head.

RegionViT carries two token streams between layers as a tuple of NCHW maps: local tokens (patch 4)
and regional tokens (patch 4·window), one regional token per window × window local tokens. Layers
registered with ``carries_regional=True`` pass the tuple on; the builder drops the regional map
(``TakeLocal``) where a layer that only reads feature maps follows.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, Mlp, get_act_layer, get_norm_layer, trunc_normal_
from timm.layers.typing import LayerType
from torch import nn

from archbench.blocks._common import divisible_by_heads
from archbench.registry import BlockContext, Param, SpecError, register

PAPER = "RegionViT: Regional-to-Local Attention for Vision Transformers, Chen et al., ICLR 2022"

# Between RegionViT layers: (local (B, C, H, W), regional (B, C, ceil(H/window), ceil(W/window))).
Streams = tuple[torch.Tensor, torch.Tensor]
MaybeStreams = Union[torch.Tensor, Streams]

# The release's LayerNorm2d (stems, downsampling) defaults to eps 1e-5; its blocks and head use 1e-6.
_LN2D_EPS = 1e-5
_LN_EPS = 1e-6


# ---- helpers ---------------------------------------------------------------------------------
def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, C, Hr·wh, Wr·ww) -> (B·Hr·Wr, wh·ww, C), windows in the regional tokens' row-major order."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // window[0], window[0], W // window[1], window[1])
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window[0] * window[1], C)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], batch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B·Hr·Wr, wh·ww, C) -> (B, C, Hr·wh, Wr·ww)."""
    C = windows.shape[-1]
    x = windows.reshape(batch, grid[0], grid[1], window[0], window[1], C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(batch, C, grid[0] * window[0], grid[1] * window[1])


def regional_from_local(local: torch.Tensor, window: int) -> torch.Tensor:
    """Regional tokens for a plain feature map (a hybrid whose earlier stage is not RegionViT).

    Parameter-free: the mean of each window × window group of local tokens (edge windows average
    only their real tokens). A block cannot know at build time whether it will receive a tuple, so
    a learned embedding here would leave unused weights in every pure RegionViT model.
    """
    return F.avg_pool2d(local, window, window, ceil_mode=True)


# ---- stem ------------------------------------------------------------------------------------
class RegionViTStem(nn.Module):
    """Local tokens from a 3-conv ('3conv') or an 8×8/4 conv ('1conv') stem at stride 4, regional
    tokens from a linear (4·window)-patch embedding of the image, centre-padded as in the release."""

    stride = 4
    carries_regional = True

    def __init__(self, in_chans: int, out_dim: int, *, local_stem: str, window: int) -> None:
        super().__init__()
        if local_stem == "3conv":
            self.local: nn.Module = nn.Sequential(
                nn.Conv2d(in_chans, out_dim // 4, 3, stride=2, padding=1),
                LayerNorm2d(out_dim // 4, eps=_LN2D_EPS),
                nn.GELU(),
                nn.Conv2d(out_dim // 4, out_dim // 2, 3, stride=2, padding=1),
                LayerNorm2d(out_dim // 2, eps=_LN2D_EPS),
                nn.GELU(),
                nn.Conv2d(out_dim // 2, out_dim, 3, stride=1, padding=1),
            )
        else:  # "1conv": kernel 2·patch, stride patch, padding patch - 1
            self.local = nn.Conv2d(in_chans, out_dim, 8, stride=4, padding=3)
        self.region_patch = self.stride * window
        self.regional = nn.Conv2d(in_chans, out_dim, self.region_patch, stride=self.region_patch)

    def forward(self, x: torch.Tensor) -> Streams:
        local = self.local(x)  # (B, C, H/4, W/4)
        H, W = x.shape[-2:]
        pad_h, pad_w = -H % self.region_patch, -W % self.region_patch
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        regional = self.regional(x)  # (B, C, ceil(H/4w), ceil(W/4w))
        return local, regional


def _stem_check(params: dict[str, Any], dim: int) -> str | None:
    if params["local_stem"] == "3conv" and dim % 4:
        return f"local_stem '3conv' needs a width divisible by 4 (C/4, C/2, C), got {dim}"
    return None


@register(
    "stem",
    "regionvit",
    params=(
        Param("local_stem", str, "3conv", choices=("3conv", "1conv"), help="Ti/S: 3conv; M/B: 1conv (8×8/4)"),
        Param("window", int, 7, min=1, help="local tokens per regional token side; regional patch = 4·window"),
    ),
    layouts=("pyramid",),
    paper=PAPER,
    check=_stem_check,
    carries_regional=True,
)
def regionvit_stem(in_chans: int, out_dim: int, *, local_stem: str, window: int) -> nn.Module:
    return RegionViTStem(in_chans, out_dim, local_stem=local_stem, window=window)


# ---- attention and block ---------------------------------------------------------------------
class R2LAttention(nn.Module):
    """Multi-head attention with a window-sized relative position table.

    One module serves both R2L steps, as in the release: regional self-attention (no bias) and
    attention within each [regional token + window² local tokens], where the bias applies among
    local tokens only. Attention runs through ``scaled_dot_product_attention`` with the bias (and
    the padding mask) as a float ``attn_mask``.
    """

    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        span = 2 * window - 1
        self.rel_pos = nn.Parameter(torch.zeros(heads, span * span))
        trunc_normal_(self.rel_pos, std=0.02)
        # Index of the offset (dy, dx) between every pair of local tokens of a window. The release
        # indexes with offset window//2 and Python's negative wrap-around: a permutation of this
        # table, so the same function and parameter count.
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = coords[:, None, :] - coords[:, :, None] + window - 1  # (2, w², w²): key minus query
        self.register_buffer("rel_index", rel[0] * span + rel[1], persistent=False)

    def local_bias(self, extent: tuple[int, int]) -> torch.Tensor:
        """(heads, 1 + n, 1 + n): the relative bias among the n = eh·ew local tokens of a window
        cropped to ``extent`` (the whole window or less), zero in the regional token's row and column."""
        eh, ew = extent
        index = self.rel_index
        if (eh, ew) != (self.window, self.window):
            # The cropped window's tokens keep their offsets, so their pairs index the same table.
            kept = (torch.arange(eh, device=index.device)[:, None] * self.window + torch.arange(ew, device=index.device)).flatten()
            index = index[kept][:, kept]
        n = eh * ew
        bias = self.rel_pos[:, index.reshape(-1)].reshape(self.heads, n, n)
        return F.pad(bias, (1, 0, 1, 0))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, h, N, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class R2LBlock(nn.Module):
    """RegionViT's R2L encoder: regional self-attention, then attention inside each region
    [regional token + its window² local tokens] with relative bias, then an MLP on all tokens.

    Local maps whose size is not a multiple of the window are zero-padded at the bottom/right to
    the regional grid and the padded tokens are masked out as keys, as the release intends. (Its
    mask unmasks the padded columns of the bottom-right window, so at such sizes its outputs
    differ from this block; at multiples of 4·window, e.g. 224, they agree exactly.)
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        norm_layer: LayerType = partial(nn.LayerNorm, eps=_LN_EPS),
        act_layer: LayerType = nn.GELU,
    ) -> None:
        super().__init__()
        norm_layer = get_norm_layer(norm_layer)
        self.window = window
        self.norm0 = norm_layer(dim)
        self.norm1 = norm_layer(dim)
        self.attn = R2LAttention(dim, heads, window, qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=get_act_layer(act_layer))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attn_mask(self, size: tuple[int, int], grid: tuple[int, int], extent: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Relative bias, plus a large negative value on padded local keys when the map was padded."""
        bias = self.attn.local_bias(extent).to(dtype)  # (h, 1 + n, 1 + n)
        H, W = size
        if H == grid[0] * extent[0] and W == grid[1] * extent[1]:
            return bias
        valid = torch.zeros(1, 1, grid[0] * extent[0], grid[1] * extent[1], device=device, dtype=dtype)
        valid[..., :H, :W] = 1.0
        valid = window_partition(valid, extent).squeeze(-1)  # (Hr·Wr, n)
        valid = F.pad(valid, (1, 0), value=1.0)  # the regional token is always a valid key
        blocked = (1.0 - valid) * torch.finfo(dtype).min  # (Hr·Wr, 1 + n)
        return bias.unsqueeze(0) + blocked[:, None, None, :]  # (Hr·Wr, h, 1 + n, 1 + n)

    def window_extent(self, size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
        """The local tokens of a region, per side: the window, or the map along an axis that holds
        one region. Padding a map smaller than the window only costs time (padded tokens are masked
        as keys and cropped as queries); at a 32 px proxy a window of 7 on a 1×1 map would attend
        50 tokens, MLP included, for 2."""
        return (size[0] if grid[0] == 1 else self.window, size[1] if grid[1] == 1 else self.window)

    def forward(self, x: MaybeStreams) -> Streams:
        local, regional = x if isinstance(x, tuple) else (x, regional_from_local(x, self.window))
        B, C, H, W = local.shape
        grid = (regional.shape[2], regional.shape[3])
        # Each regional token owns one window: the grid must cover the map with at most one window
        # to spare (the release's 8×8/4 stem leaves a fully padded row at sizes like 225).
        if not all((g - 1) * self.window <= n <= g * self.window for g, n in zip(grid, (H, W))):
            raise RuntimeError(
                f"regional grid {grid} with window {self.window} does not match the local map {(H, W)}: "
                "the stem's window and the blocks' window must agree"
            )

        # 1. Regional self-attention over all regional tokens of an image.
        r = regional.flatten(2).transpose(1, 2)  # (B, Hr·Wr, C)
        r = r + self.drop_path(self.attn(self.norm0(r)))

        # 2. Local attention inside each region, its regional token in front.
        extent = self.window_extent((H, W), grid)
        pad_h, pad_w = grid[0] * extent[0] - H, grid[1] * extent[1] - W
        windows = window_partition(F.pad(local, (0, pad_w, 0, pad_h)), extent)  # (B·Hr·Wr, n, C)
        t = torch.cat([r.reshape(-1, 1, C), windows], dim=1)  # (B·Hr·Wr, 1 + n, C)
        mask = self._attn_mask((H, W), grid, extent, local.device, local.dtype)
        if mask.dim() == 4:  # per-window padding mask: repeat it for every image of the batch
            mask = mask.repeat(B, 1, 1, 1)
        t = t + self.drop_path(self.attn(self.norm1(t), mask))
        t = t + self.drop_path(self.mlp(self.norm2(t)))

        # 3. Back to two NCHW maps, padding cropped.
        regional = t[:, 0].reshape(B, grid[0], grid[1], C).permute(0, 3, 1, 2)  # (B, C, Hr, Wr)
        local = window_reverse(t[:, 1:], extent, B, grid)[:, :, :H, :W]  # (B, C, H, W)
        return local, regional


@register(
    "block",
    "regional",
    params=(
        Param("heads", int, min=1, help="attention heads; dim must divide evenly"),
        Param("window", int, 7, min=1, help="local tokens per region side (regional patch / 4)"),
        Param("mlp_ratio", float, 4.0, min=0.25),
        Param("qkv_bias", bool, True),
    ),
    layouts=("pyramid",),
    paper=PAPER,
    check=divisible_by_heads,
    carries_regional=True,
)
def regional(ctx: BlockContext, *, heads: int, window: int, mlp_ratio: float, qkv_bias: bool) -> nn.Module:
    return R2LBlock(ctx.dim, heads, window, mlp_ratio, qkv_bias, ctx.drop_path)


# ---- downsampling ----------------------------------------------------------------------------
class RegionViTDownsample(nn.Module):
    """LN2d, GELU, grouped 3×3/2 conv (groups = C_in) on both streams.

    The release applies one module to both streams (``proj_cls = proj``); ``shared=False`` gives
    the regional stream its own copy. A plain map in gives a plain map out.
    """

    stride = 2

    def __init__(self, in_dim: int, out_dim: int, *, shared: bool) -> None:
        super().__init__()
        self.proj = self._make(in_dim, out_dim)
        self.proj_regional = self.proj if shared else self._make(in_dim, out_dim)

    @staticmethod
    def _make(in_dim: int, out_dim: int) -> nn.Module:
        return nn.Sequential(
            LayerNorm2d(in_dim, eps=_LN2D_EPS),
            nn.GELU(),
            nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, groups=in_dim),
        )

    def forward(self, x: MaybeStreams) -> MaybeStreams:
        if not isinstance(x, tuple):
            return self.proj(x)  # (B, C_out, H/2, W/2)
        local, regional = x
        return self.proj(local), self.proj_regional(regional)


@register(
    "downsample",
    "regionvit",
    params=(Param("shared", bool, True, help="one module for both streams (the release) or one each"),),
    paper=PAPER,
    carries_regional=True,
)
def regionvit_downsample(in_dim: int, out_dim: int, *, shared: bool) -> nn.Module:
    if out_dim % in_dim:
        raise SpecError("downsample", f"grouped conv (groups = C_in) needs C_out divisible by C_in, got {in_dim}->{out_dim}")
    return RegionViTDownsample(in_dim, out_dim, shared=shared)


# ---- head ------------------------------------------------------------------------------------
class RegionViTHead(nn.Module):
    """The release's classifier: LayerNorm on the final regional tokens, their mean, a linear layer.
    ``pool='local'`` (or a plain map in, after a non-RegionViT last stage) averages local tokens."""

    def __init__(self, in_dim: int, num_classes: int, *, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.norm = nn.LayerNorm(in_dim, eps=_LN_EPS)
        self.fc = nn.Linear(in_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: MaybeStreams) -> torch.Tensor:
        if isinstance(x, tuple):
            x = x[1] if self.pool == "regional" else x[0]
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, N, C)
        return self.fc(tokens.mean(1))


@register(
    "head",
    "regionvit",
    params=(Param("pool", str, "regional", choices=("regional", "local"), help="tokens averaged for the classifier"),),
    layouts=("pyramid",),
    paper=PAPER,
    carries_regional=True,
)
def regionvit_head(in_dim: int, num_classes: int, *, layout: str, pool: str) -> nn.Module:
    return RegionViTHead(in_dim, num_classes, pool=pool)


__all__ = ["R2LAttention", "R2LBlock", "RegionViTDownsample", "RegionViTHead", "RegionViTStem"]
