"""ArchSpec -> torch.nn.Module: stems, stages, downsampling and heads, isotropic or pyramid.

Every architecture (a zoo preset or a searched sample) is built by this one code path, so what is
measured and trained is exactly what the spec says.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from archbench.registry import BlockContext, LayerInfo, SpecError, TokenState, lookup
from archbench.spec import ArchSpec, load_file


class TakeLocal(nn.Module):
    """Drops RegionViT's regional tokens where a layer that only knows feature maps comes next."""

    def forward(self, x: Any) -> torch.Tensor:
        return x[0] if isinstance(x, tuple) else x


class Stage(nn.Module):
    """Optional downsampling followed by ``depth`` blocks at one resolution (pyramid layout)."""

    def __init__(self, downsample: nn.Module | None, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: Any) -> Any:
        return self.blocks(self.downsample(x))


class PyramidNet(nn.Module):
    """Stem, then stages at falling resolution (NCHW between layers), then a head."""

    def __init__(self, arch: ArchSpec, stem: nn.Module, stages: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.arch = arch
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.head = head
        self.num_classes = arch.input.num_classes

    def forward_features(self, x: torch.Tensor) -> Any:
        return self.stages(self.stem(x))

    def forward_head(self, x: Any) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class IsotropicNet(nn.Module):
    """ViT-style trunk: patch stem, optional class token and learned position embedding, blocks, head.

    The position embedding is learned at the spec's ``img_size`` and resized bicubically for other
    grids (as timm's ``dynamic_img_size``), so the trunk runs at any multiple of the patch size.
    """

    def __init__(self, arch: ArchSpec, stem: nn.Module, blocks: list[nn.Module], cls_before: int, head: nn.Module) -> None:
        super().__init__()
        assert arch.tokens is not None
        self.arch = arch
        self.stem = stem
        dim = arch.stages[0].dim
        grid = arch.input.img_size // stem.stride
        self.grid = (grid, grid)
        self.cls_before = cls_before  # index of the first block that sees the class token
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if arch.tokens.cls_token else None
        num_pos = grid * grid + (1 if self.cls_token is not None and cls_before == 0 else 0)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_pos, dim)) if arch.tokens.pos_embed else None
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.num_classes = arch.input.num_classes
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)

    def _add_pos_embed(self, x: torch.Tensor, hw: tuple[int, int], has_cls: bool) -> torch.Tensor:
        if self.pos_embed is None:
            return x
        pos = self.pos_embed
        prefix = pos[:, :1] if has_cls else pos[:, :0]
        grid_pos = pos[:, prefix.shape[1]:]
        if hw != self.grid:
            grid_pos = grid_pos.reshape(1, *self.grid, -1).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid_pos, size=hw, mode="bicubic", align_corners=False)
            grid_pos = grid_pos.flatten(2).transpose(1, 2)
        return x + torch.cat([prefix, grid_pos], dim=1)

    def _prepend_cls(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, TokenState]:
        x = self.stem(x)  # (B, C, h, w)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        state = TokenState(hw=hw, num_prefix_tokens=0)
        if self.cls_token is not None and self.cls_before == 0:
            x = self._prepend_cls(x)
            state.num_prefix_tokens = 1
        x = self._add_pos_embed(x, hw, has_cls=state.num_prefix_tokens == 1)
        for i, block in enumerate(self.blocks):
            if self.cls_token is not None and i == self.cls_before and i > 0:
                x = self._prepend_cls(x)
                state.num_prefix_tokens = 1
            x = block(x, state)
        if self.cls_token is not None and self.cls_before == len(self.blocks):
            x = self._prepend_cls(x)
            state.num_prefix_tokens = 1
        return x, state

    def forward_head(self, features: tuple[torch.Tensor, TokenState]) -> torch.Tensor:
        return self.head(*features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build(arch: ArchSpec | str, *, img_size: int | None = None, num_classes: int | None = None) -> nn.Module:
    """Build ``arch`` (an ArchSpec, zoo name or spec file) as an ``nn.Module`` with timm-style init.

    Example:
        >>> model = archbench.build("deit_s", num_classes=10)
        >>> model(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 10])
    """
    if isinstance(arch, str):
        from archbench import load_arch

        arch = load_arch(arch)
    if img_size is not None or num_classes is not None:
        arch = arch.with_input(img_size=img_size, num_classes=num_classes)
    stem_info = lookup("stem", arch.stem.type, "stem.type")
    stem = stem_info.factory(arch.input.in_chans, arch.stages[0].dim, **arch.stem.params)
    stride = int(getattr(stem, "stride", 0))
    if stride < 1:
        raise SpecError("stem.type", f"stem '{arch.stem.type}' does not declare its stride")
    drop_rates = _drop_path_schedule(arch)
    if arch.layout == "isotropic":
        model = _build_isotropic(arch, stem, stride, drop_rates)
    else:
        model = _build_pyramid(arch, stem, stride, drop_rates)
    model.apply(_init_weights)
    for module in model.modules():
        # Blocks with their own initialisation (layer scale, gating, zero-init) re-apply it last.
        if module is not model and hasattr(module, "init_weights"):
            module.init_weights()
    return model


def _drop_path_schedule(arch: ArchSpec) -> list[float]:
    total = arch.depth
    return [arch.drop_path_rate * i / max(total - 1, 1) for i in range(total)]


def _build_pyramid(arch: ArchSpec, stem: nn.Module, stride: int, drop_rates: list[float]) -> PyramidNet:
    resolution = math.ceil(arch.input.img_size / stride)
    stages: list[nn.Module] = []
    prev_dim = arch.stages[0].dim
    carrying_regional = bool(getattr(stem, "carries_regional", False))
    offset = 0
    for si, stage in enumerate(arch.stages):
        path = f"stages[{si}]"
        block_info = lookup("block", stage.block.type, f"{path}.block.type")
        downsample = None
        if stage.downsample is not None:
            down_info = lookup("downsample", stage.downsample.type, f"{path}.downsample.type")
            down = down_info.factory(prev_dim, stage.dim, **stage.downsample.params)
            resolution = math.ceil(resolution / int(getattr(down, "stride", 2)))
            downsample = _adapt(down, carrying_regional, down_info)
            carrying_regional = carrying_regional and down_info.carries_regional
        blocks = []
        shared: dict[str, Any] = {}
        for bi in range(stage.depth):
            ctx = BlockContext(
                dim=stage.dim,
                layout="pyramid",
                stage_index=si,
                block_index=bi,
                stage_depth=stage.depth,
                drop_path=drop_rates[offset + bi],
                resolution=(resolution, resolution),
                stage_shared=shared,
            )
            block = block_info.factory(ctx, **stage.block.params)
            blocks.append(_adapt(block, carrying_regional, block_info))
            carrying_regional = block_info.carries_regional
        offset += stage.depth
        stages.append(Stage(downsample, blocks))
        prev_dim = stage.dim
    head_info = lookup("head", arch.head.type, "head.type")
    head = head_info.factory(prev_dim, arch.input.num_classes, layout="pyramid", **arch.head.params)
    head = _adapt(head, carrying_regional, head_info)
    return PyramidNet(arch, stem, stages, head)


def _adapt(module: nn.Module, incoming_regional: bool, info: LayerInfo) -> nn.Module:
    """Insert TakeLocal where a (local, regional) pair meets a layer that reads feature maps only."""
    if incoming_regional and not info.carries_regional:
        return nn.Sequential(TakeLocal(), module)
    return module


def _build_isotropic(arch: ArchSpec, stem: nn.Module, stride: int, drop_rates: list[float]) -> IsotropicNet:
    assert arch.tokens is not None
    grid = arch.input.img_size // stride
    cls_before = sum(s.depth for s in arch.stages[: arch.tokens.cls_token_stage])
    blocks: list[nn.Module] = []
    index = 0
    for si, stage in enumerate(arch.stages):
        info = lookup("block", stage.block.type, f"stages[{si}].block.type")
        shared: dict[str, Any] = {}
        for bi in range(stage.depth):
            has_cls = arch.tokens.cls_token and index >= cls_before
            ctx = BlockContext(
                dim=stage.dim,
                layout="isotropic",
                stage_index=si,
                block_index=bi,
                stage_depth=stage.depth,
                drop_path=drop_rates[index],
                resolution=(grid, grid),
                num_prefix_tokens=1 if has_cls else 0,
                stage_shared=shared,
            )
            blocks.append(info.factory(ctx, **stage.block.params))
            index += 1
    head_info = lookup("head", arch.head.type, "head.type")
    head = head_info.factory(arch.stages[-1].dim, arch.input.num_classes, layout="isotropic", **arch.head.params)
    return IsotropicNet(arch, stem, blocks, cls_before, head)


def _init_weights(module: nn.Module) -> None:
    """timm's ViT/Swin initialisation: truncated-normal linear weights, zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def load_arch(name_or_path: str) -> ArchSpec:
    """A zoo preset by name, or one architecture from a YAML/JSON file."""
    from archbench import zoo

    if name_or_path in zoo.names():
        return zoo.get(name_or_path)
    if name_or_path.endswith((".yaml", ".yml", ".json")) or "/" in name_or_path:
        return load_file(name_or_path)
    raise SpecError("", f"unknown model '{name_or_path}': not a zoo preset ({zoo.suggest(name_or_path)}) and not a .yaml/.json file")
