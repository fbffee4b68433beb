"""Proxy scaling: every zoo preset scales to a valid, buildable spec that runs at proxy size."""
from __future__ import annotations

import pytest
import torch

from archbench import ArchSpec, build, zoo
from archbench.registry import lookup
from archbench.train.proxy import scale_arch, total_stride


@pytest.mark.parametrize("name", zoo.names())
def test_every_preset_scales_builds_and_runs(name):
    arch = zoo.get(name)
    img = 32 if total_stride(arch) <= 32 else total_stride(arch)
    proxy = scale_arch(arch, width_mult=0.25, depth_mult=0.34, img_size=img, num_classes=10)
    # A valid spec: it re-parses to itself, and every block accepts its width.
    assert ArchSpec.from_dict(proxy.to_dict()) == proxy
    assert proxy.input.img_size == img and proxy.input.num_classes == 10
    assert [s.block.type for s in proxy.stages] == [s.block.type for s in arch.stages]
    for full, small in zip(arch.stages, proxy.stages):
        assert small.dim >= 8 and small.dim % 8 == 0
        assert small.dim <= max(8, full.dim)
        assert 1 <= small.depth <= full.depth
        heads = small.block.params.get("heads")
        if heads is not None:
            assert small.dim % heads == 0
    model = build(proxy)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, proxy.input.in_chans, img, img))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # Cheap to train: a 0.25-wide proxy of any preset stays under ~3M parameters.
    assert sum(p.numel() for p in model.parameters()) < 3_000_000


def test_deit_s_scaling_keeps_heads_when_they_divide():
    proxy = scale_arch(zoo.get("deit_s"), width_mult=0.25, depth_mult=0.34, img_size=32, num_classes=10)
    stage = proxy.stages[0]
    assert (stage.dim, stage.depth, stage.block.params["heads"]) == (96, 4, 6)


def test_heads_scale_with_width_keeping_head_dim():
    # 384 × 0.3 = 115.2 -> 112; 6 heads do not divide 112, so heads follow the 64-wide head dim.
    proxy = scale_arch(zoo.get("deit_s"), width_mult=0.3, depth_mult=1.0, img_size=32, num_classes=10)
    stage = proxy.stages[0]
    assert stage.dim == 112 and stage.block.params["heads"] == 2 and stage.depth == 12
    lookup("block", "mhsa").resolve(dict(stage.block.params), "x", dim=stage.dim)


def test_width_floor_depth_floor_and_stride_error():
    arch = zoo.get("deit_ti")
    tiny = scale_arch(arch, width_mult=0.01, depth_mult=0.01, img_size=16, num_classes=3)
    assert tiny.stages[0].dim == 8 and tiny.stages[0].depth == 1 and 8 % tiny.stages[0].block.params["heads"] == 0
    assert total_stride(arch) == 16
    with pytest.raises(ValueError, match="img_size 8 is smaller than the network's total stride 16"):
        scale_arch(arch, width_mult=0.25, depth_mult=0.34, img_size=8, num_classes=10)
    with pytest.raises(ValueError, match="width_mult must be a positive number"):
        scale_arch(arch, width_mult=0.0, depth_mult=0.34, img_size=32, num_classes=10)


def test_pyramid_groups_share_width_and_absolute_widths_shrink():
    arch = ArchSpec.from_dict({
        "layout": "pyramid",
        "input": {"img_size": 64},
        "stem": {"type": "patchify", "params": {"patch_size": 4}},
        "stages": [
            {"depth": 2, "dim": 96, "block": {"type": "convnext"}},
            {"depth": 3, "dim": 96, "block": {"type": "mhsa", "params": {"heads": 3}}},  # same width, no downsample
            {"depth": 2, "dim": 192, "block": {"type": "mhsa", "params": {"heads": 6, "sr_ratio": 8}}, "downsample": {"type": "conv"}},
        ],
        "head": {"type": "linear", "params": {"hidden_dim": 1280}},
    })
    proxy = scale_arch(arch, width_mult=0.25, depth_mult=0.5, img_size=16, num_classes=10, drop_path_rate=0.0)
    dims = [s.dim for s in proxy.stages]
    assert dims[0] == dims[1] == 24 and dims[2] == 48
    assert [s.depth for s in proxy.stages] == [1, 2, 1]  # 1.5 rounds half up
    assert proxy.head.params["hidden_dim"] == 320
    # The last stage's map is 2×2 at 16 px: PVT's 8×8 spatial-reduction kernel is clamped to it.
    assert proxy.stages[2].block.params["sr_ratio"] == 2
    out = build(proxy)(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10)
