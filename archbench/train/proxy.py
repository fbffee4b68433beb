"""Proxy architectures: an ArchSpec scaled down in width, depth and resolution for cheap training,
as in the proxy-task practice of NAS (Zoph et al., 2018; Cai et al., ProxylessNAS, ICLR 2019).

Every width is re-chosen so the registry's own checks (heads, groups) pass, so the proxy is a
valid spec of the same block types; nothing here knows a block family by name.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import torch

from archbench.errors import UserError
from archbench.registry import SpecError, lookup
from archbench.spec import ArchSpec, LayerSpec

# Integer params that count heads: scaled with the width when the old count no longer divides it.
HEAD_PARAMS = ("heads", "num_heads")
# Integer params that are absolute channel counts of a layer (a stem's inner convs, a head's
# pre-logits layer): they shrink with the width like the stage dims do.
WIDTH_PARAMS = ("channels", "hidden_dim", "fc_dim", "mid_dim", "embed_dim", "stem_dim", "hidden_channels")
# Integer params that are both kernel and stride over the feature map (PVT's spatial reduction):
# a map smaller than the kernel cannot take them, so they are clamped to the map at proxy size.
MAP_KERNEL_PARAMS = ("sr_ratio",)

MIN_DIM = 8


def scale_arch(
    arch: ArchSpec,
    *,
    width_mult: float,
    depth_mult: float,
    img_size: int,
    num_classes: int,
    in_chans: int | None = None,
    drop_path_rate: float | None = None,
) -> ArchSpec:
    """``arch`` scaled for proxy training: widths × ``width_mult``, depths × ``depth_mult``.

    Widths round to the nearest multiple of 8 (at least 8) that every layer of the stage group
    accepts; when a stage's ``heads`` no longer divide the new width, the head count is scaled
    instead, keeping the head dimension. Depths round half up, at least 1 a stage. Stages without a
    downsampling layer keep the width of the stage before them, as the spec requires.

    Example:
        >>> from archbench import zoo
        >>> proxy = scale_arch(zoo.get("deit_s"), width_mult=0.25, depth_mult=0.34, img_size=32, num_classes=10)
        >>> proxy.stages[0].dim, proxy.stages[0].depth, proxy.stages[0].block.params["heads"]
        (96, 4, 6)

    Args:
        arch: the full architecture (a zoo preset or a sampled spec).
        width_mult: factor on every stage width and absolute channel parameter, > 0.
        depth_mult: factor on every stage depth, > 0.
        img_size: the proxy resolution; must leave at least one pixel after the network's stride.
        num_classes: classes of the proxy dataset.
        in_chans: input channels (None keeps the spec's).
        drop_path_rate: overrides the stochastic-depth rate (None keeps the spec's).

    Raises:
        ValueError: a multiplier is not positive, ``img_size`` is too small for the stride, or no
            width near the target satisfies a layer's checks (the message names the stage).
    """
    if not width_mult > 0 or not math.isfinite(width_mult):
        raise UserError(f"width_mult must be a positive number, got {width_mult!r}")
    if not depth_mult > 0 or not math.isfinite(depth_mult):
        raise UserError(f"depth_mult must be a positive number, got {depth_mult!r}")
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
        raise UserError(f"img_size must be a positive integer, got {img_size!r}")

    stride = total_stride(arch)
    if img_size < stride:
        raise UserError(
            f"{arch.name}: proxy img_size {img_size} is smaller than the network's total stride {stride} "
            f"(stem ×{_stem_stride(arch)}, {stride // _stem_stride(arch)}× from downsampling); "
            f"use img_size >= {stride}"
        )

    stages = [dict(s) for s in arch.to_dict()["stages"]]
    for first, last in _width_groups(arch):
        dim, blocks = _choose_width(arch, first, last, arch.stages[first].dim * width_mult)
        for i in range(first, last):
            stages[i]["dim"] = dim
            stages[i]["block"] = {"type": arch.stages[i].block.type, "params": blocks[i - first]}
    for i, stage in enumerate(stages):
        stage["depth"] = max(1, math.floor(arch.stages[i].depth * depth_mult + 0.5))
        if stage["downsample"] is not None:
            stage["downsample"]["params"] = _scale_widths(stage["downsample"]["params"], width_mult)
    _clamp_map_kernels(arch, stages, img_size)

    data = arch.to_dict()
    data["input"] = {
        "img_size": img_size,
        "in_chans": arch.input.in_chans if in_chans is None else in_chans,
        "num_classes": num_classes,
    }
    data["stem"]["params"] = _scale_widths(data["stem"]["params"], width_mult)
    data["head"]["params"] = _scale_widths(data["head"]["params"], width_mult)
    data["stages"] = stages
    if drop_path_rate is not None:
        data["drop_path_rate"] = drop_path_rate
    try:
        return ArchSpec.from_dict(data)
    except SpecError as err:
        raise UserError(f"{arch.name}: the proxy (width ×{width_mult}, depth ×{depth_mult}) is invalid: {err}") from None


def total_stride(arch: ArchSpec) -> int:
    """Input pixels per final feature-map pixel: the stem's stride times every downsampling stride."""
    stride = _stem_stride(arch)
    for i, stage in enumerate(arch.stages):
        if stage.downsample is not None:
            stride *= _downsample_stride(stage.downsample, arch.stages[i - 1].dim if i else stage.dim, stage.dim)
    return stride


# ---- widths -------------------------------------------------------------------------------------
def _width_groups(arch: ArchSpec) -> Iterator[tuple[int, int]]:
    """Runs of stages that must share one width: a new width starts only at a downsampling layer."""
    first = 0
    for i in range(1, len(arch.stages) + 1):
        if i == len(arch.stages) or arch.stages[i].downsample is not None:
            yield first, i
            first = i


def _choose_width(arch: ArchSpec, first: int, last: int, target: float) -> tuple[int, list[dict[str, Any]]]:
    """The width nearest ``target`` (multiples of 8 first) that every layer of stages[first:last] accepts."""
    original = arch.stages[first].dim
    for dim in _candidate_dims(target, original):
        chosen: list[dict[str, Any]] = []
        for i in range(first, last):
            params = _valid_block_params(arch, i, dim)
            if params is None:
                break
            chosen.append(params)
        else:
            if _accepts(arch, first, last, dim):
                return dim, chosen
    raise UserError(
        f"{arch.name}: no width near {target:.1f} satisfies the layers of stages[{first}:{last}] "
        f"({', '.join(sorted({s.block.type for s in arch.stages[first:last]}))}); try another width_mult"
    )


def _candidate_dims(target: float, original: int) -> list[int]:
    floor = MIN_DIM if original >= MIN_DIM else 1
    upper = max(MIN_DIM, math.ceil(2 * target) + 64)
    dims = range(floor, upper + 1)
    # Multiples of 8 first (tensor-core and vector friendly), then by distance, larger on ties.
    return sorted(dims, key=lambda d: (d % 8 != 0, abs(d - target), -d))


def _valid_block_params(arch: ArchSpec, index: int, dim: int) -> dict[str, Any] | None:
    stage = arch.stages[index]
    info = lookup("block", stage.block.type)
    for params in _param_variants(dict(stage.block.params), stage.dim, dim):
        params = _scale_widths(params, dim / stage.dim)
        try:
            info.resolve(params, f"stages[{index}].block.params", dim=dim)
        except SpecError:
            continue
        return params
    return None


def _param_variants(params: dict[str, Any], old_dim: int, dim: int) -> Iterator[dict[str, Any]]:
    """The block's own params first; then head counts that keep the head dimension nearest."""
    yield params
    for key in HEAD_PARAMS:
        heads = params.get(key)
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
            continue
        head_dim = old_dim / heads
        wanted = max(1.0, dim / head_dim)
        divisors = [h for h in range(1, dim + 1) if dim % h == 0]
        for h in sorted(divisors, key=lambda h: (abs(h - wanted), h)):
            if h != heads:
                yield {**params, key: h}


def _accepts(arch: ArchSpec, first: int, last: int, dim: int) -> bool:
    """Stem (first group), downsampling layer (other groups) and head (last group) accept ``dim``."""
    try:
        if first == 0:
            lookup("stem", arch.stem.type).resolve(dict(arch.stem.params), "stem.params", dim=dim)
        down = arch.stages[first].downsample
        if down is not None:
            lookup("downsample", down.type).resolve(dict(down.params), "downsample.params", dim=dim)
        if last == len(arch.stages):
            lookup("head", arch.head.type).resolve(dict(arch.head.params), "head.params", dim=dim)
    except SpecError:
        return False
    return True


def _scale_widths(params: Mapping[str, Any] | None, mult: float) -> dict[str, Any]:
    out = dict(params or {})
    for key in WIDTH_PARAMS:
        value = out.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            continue  # 0 means "absent" (e.g. no pre-logits layer)
        out[key] = max(MIN_DIM, round(value * mult / 8) * 8) if value >= MIN_DIM else value
    return out


# ---- resolution ---------------------------------------------------------------------------------
def _stem_stride(arch: ArchSpec) -> int:
    info = lookup("stem", arch.stem.type, "stem.type")
    with torch.device("meta"):  # only the stride attribute is wanted: no memory, no init cost
        stem = info.factory(arch.input.in_chans, arch.stages[0].dim, **arch.stem.params)
    stride = int(getattr(stem, "stride", 0))
    if stride < 1:
        raise ValueError(f"{arch.name}: stem '{arch.stem.type}' does not declare its stride")
    return stride


def _downsample_stride(layer: LayerSpec, in_dim: int, out_dim: int) -> int:
    info = lookup("downsample", layer.type)
    with torch.device("meta"):
        module = info.factory(in_dim, out_dim, **layer.params)
    return int(getattr(module, "stride", 2))


def _clamp_map_kernels(arch: ArchSpec, stages: list[dict[str, Any]], img_size: int) -> None:
    """Clamp kernel-and-stride params to the stage's feature map at ``img_size`` (pyramids only)."""
    if arch.layout != "pyramid":
        return
    size = math.ceil(img_size / _stem_stride(arch))
    for i, stage in enumerate(stages):
        down = arch.stages[i].downsample
        if down is not None:
            size = math.ceil(size / _downsample_stride(down, arch.stages[i - 1].dim, arch.stages[i].dim))
        params = stage["block"]["params"]
        for key in MAP_KERNEL_PARAMS:
            value = params.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > size:
                params[key] = max(1, size)


__all__ = ["scale_arch", "total_stride"]
