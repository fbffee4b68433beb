"""ArchSpec -> torch.nn.Module: stems, stages, downsampling and heads, isotropic or pyramid.

Every architecture (a zoo preset or a searched sample) is built by this one code path, so what is
measured and trained is exactly what the spec says.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

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
    maker = _ModuleMaker()
    compose(arch, maker)
    model = maker.assemble(arch)
    model.apply(_init_weights)
    for module in model.modules():
        # Blocks with their own initialisation (layer scale, gating, zero-init) re-apply it last.
        if module is not model and hasattr(module, "init_weights"):
            module.init_weights()
    return model


class LayerMaker(Protocol):
    """What :func:`compose` hands each layer to, in forward order: ``build`` makes modules, the
    per-layer cost cache (``archbench.measure.layer_cost``) looks up or measures each layer."""

    def stem(self, info: LayerInfo, in_chans: int, dim: int, params: dict[str, Any]) -> int:
        """Make the stem; return its stride."""

    def downsample(self, path: str, info: LayerInfo, in_dim: int, out_dim: int, params: dict[str, Any], *, take_local: bool) -> int:
        """Make a stage's downsampling layer (after TakeLocal when ``take_local``); return its stride."""

    def block(self, path: str, info: LayerInfo, ctx: BlockContext, params: dict[str, Any], *, take_local: bool) -> None:
        """Make one block; a stage's blocks share ``ctx.stage_shared``."""

    def trunk(self, arch: ArchSpec, stride: int, cls_before: int) -> None:
        """Isotropic only, before the blocks: the class token and position embedding."""

    def head(self, info: LayerInfo, in_dim: int, num_classes: int, layout: str, params: dict[str, Any], *, take_local: bool) -> None:
        """Make the head."""


def compose(arch: ArchSpec, maker: LayerMaker) -> None:
    """Walk ``arch`` layer by layer (stem, [trunk], stages of blocks, head), giving ``maker`` each
    layer's factory arguments and its context: the one place that says how an ArchSpec composes."""
    stem_info = lookup("stem", arch.stem.type, "stem.type")
    stride = maker.stem(stem_info, arch.input.in_chans, arch.stages[0].dim, dict(arch.stem.params))
    if stride < 1:
        raise SpecError("stem.type", f"stem '{arch.stem.type}' does not declare its stride")
    drop_rates = _drop_path_schedule(arch)
    if arch.layout == "isotropic":
        _compose_isotropic(arch, maker, stride, drop_rates)
    else:
        _compose_pyramid(arch, maker, stride, bool(stem_info.carries_regional), drop_rates)


def _drop_path_schedule(arch: ArchSpec) -> list[float]:
    total = arch.depth
    return [arch.drop_path_rate * i / max(total - 1, 1) for i in range(total)]


def _compose_pyramid(arch: ArchSpec, maker: LayerMaker, stride: int, carrying_regional: bool, drop_rates: list[float]) -> None:
    resolution = math.ceil(arch.input.img_size / stride)
    prev_dim = arch.stages[0].dim
    offset = 0
    for si, stage in enumerate(arch.stages):
        path = f"stages[{si}]"
        block_info = lookup("block", stage.block.type, f"{path}.block.type")
        if stage.downsample is not None:
            down_info = lookup("downsample", stage.downsample.type, f"{path}.downsample.type")
            take_local = carrying_regional and not down_info.carries_regional
            down_stride = maker.downsample(f"{path}.downsample", down_info, prev_dim, stage.dim, dict(stage.downsample.params), take_local=take_local)
            resolution = math.ceil(resolution / down_stride)
            carrying_regional = carrying_regional and down_info.carries_regional
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
            take_local = carrying_regional and not block_info.carries_regional
            maker.block(f"{path}.blocks[{bi}]", block_info, ctx, dict(stage.block.params), take_local=take_local)
            carrying_regional = block_info.carries_regional
        offset += stage.depth
        prev_dim = stage.dim
    head_info = lookup("head", arch.head.type, "head.type")
    take_local = carrying_regional and not head_info.carries_regional
    maker.head(head_info, prev_dim, arch.input.num_classes, "pyramid", dict(arch.head.params), take_local=take_local)


def _compose_isotropic(arch: ArchSpec, maker: LayerMaker, stride: int, drop_rates: list[float]) -> None:
    assert arch.tokens is not None
    grid = arch.input.img_size // stride
    cls_before = sum(s.depth for s in arch.stages[: arch.tokens.cls_token_stage])
    maker.trunk(arch, stride, cls_before)
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
            maker.block(f"stages[{si}].blocks[{bi}]", info, ctx, dict(stage.block.params), take_local=False)
            index += 1
    head_info = lookup("head", arch.head.type, "head.type")
    maker.head(head_info, arch.stages[-1].dim, arch.input.num_classes, "isotropic", dict(arch.head.params), take_local=False)


def adapt(module: nn.Module, take_local: bool) -> nn.Module:
    """Insert TakeLocal where a (local, regional) pair meets a layer that reads feature maps only."""
    return nn.Sequential(TakeLocal(), module) if take_local else module


class _ModuleMaker:
    """The LayerMaker of :func:`build`: makes each layer's module and assembles the network."""

    def __init__(self) -> None:
        self.stem_module: nn.Module | None = None
        self.stages: list[tuple[nn.Module | None, list[nn.Module]]] = []
        self.pending_down: nn.Module | None = None
        self.cls_before = 0
        self.head_module: nn.Module | None = None

    def stem(self, info: LayerInfo, in_chans: int, dim: int, params: dict[str, Any]) -> int:
        self.stem_module = info.factory(in_chans, dim, **params)
        return int(getattr(self.stem_module, "stride", 0))

    def downsample(self, path: str, info: LayerInfo, in_dim: int, out_dim: int, params: dict[str, Any], *, take_local: bool) -> int:
        down = info.factory(in_dim, out_dim, **params)
        self.pending_down = adapt(down, take_local)
        return int(getattr(down, "stride", 2))

    def block(self, path: str, info: LayerInfo, ctx: BlockContext, params: dict[str, Any], *, take_local: bool) -> None:
        if ctx.block_index == 0:
            self.stages.append((self.pending_down, []))
            self.pending_down = None
        self.stages[-1][1].append(adapt(info.factory(ctx, **params), take_local))

    def trunk(self, arch: ArchSpec, stride: int, cls_before: int) -> None:
        self.cls_before = cls_before

    def head(self, info: LayerInfo, in_dim: int, num_classes: int, layout: str, params: dict[str, Any], *, take_local: bool) -> None:
        self.head_module = adapt(info.factory(in_dim, num_classes, layout=layout, **params), take_local)

    def assemble(self, arch: ArchSpec) -> nn.Module:
        assert self.stem_module is not None and self.head_module is not None
        if arch.layout == "isotropic":
            blocks = [b for _, stage_blocks in self.stages for b in stage_blocks]
            return IsotropicNet(arch, self.stem_module, blocks, self.cls_before, self.head_module)
        stages: list[nn.Module] = [Stage(down, blocks) for down, blocks in self.stages]
        return PyramidNet(arch, self.stem_module, stages, self.head_module)


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
