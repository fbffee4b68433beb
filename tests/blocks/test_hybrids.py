"""Hybrids of the seed papers' blocks: they build, run, train, and their MACs are the sum of their
parts measured one by one (stem, each stage on its own input, head)."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.measure import count_macs, count_macs_meta
from archbench.spec import ArchSpec

DOWN = {"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "pre"}}


def hybrid(img_size: int = 224) -> ArchSpec:
    """A conv stem, a gnConv stage, focal stages, then refiner stages — as the issue describes."""
    return ArchSpec.from_dict(
        {
            "name": "conv-gnconv-focal-refiner",
            "layout": "pyramid",
            "input": {"img_size": img_size, "num_classes": 100},
            "stem": {"type": "overlap", "params": {"kernel": 7, "stride": 4, "norm": "batchnorm", "act": "relu"}},
            "stages": [
                {"depth": 2, "dim": 48, "block": {"type": "gnconv", "params": {"order": 2}}},
                {"depth": 2, "dim": 96, "downsample": DOWN, "block": {"type": "focal", "params": {"heads": 3}}},
                {"depth": 3, "dim": 192, "downsample": DOWN, "block": {"type": "focal", "params": {"heads": 6, "focal_window": 3}}},
                {"depth": 2, "dim": 384, "downsample": DOWN, "block": {"type": "refiner", "params": {"heads": 12}}},
            ],
            "head": {"type": "linear"},
        }
    )


def test_hybrid_summary_and_shapes_at_two_resolutions():
    arch = hybrid()
    assert arch.summary() == "overlap | gnconv×2 · focal×2 · focal×3 · refiner×2"
    model = archbench.build(arch).eval()
    with torch.no_grad():
        for size in (224, 160):
            assert model(torch.randn(1, 3, size, size)).shape == (1, 100)


def test_hybrid_trains_one_step_with_finite_gradients():
    model = archbench.build(hybrid(64), num_classes=10)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("size", [224, 160])
def test_hybrid_macs_equal_the_sum_of_its_parts(size):
    model = archbench.build(hybrid(size)).eval()
    total = count_macs(model, size)
    assert total.uncounted_ops == {}
    parts = count_macs(model.stem, size).total
    with torch.no_grad():
        x = model.stem(torch.zeros(1, 3, size, size))
        for stage in model.stages:
            parts += count_macs(stage, tuple(x.shape[-2:]), in_chans=x.shape[1]).total
            x = stage(x)
    parts += count_macs(model.head, tuple(x.shape[-2:]), in_chans=x.shape[1]).total
    assert parts == total.total


def test_hybrid_matrix_products_match_the_independent_counter():
    counted = count_macs(archbench.build(hybrid()), 224)
    assert counted.matmul_macs == count_macs_meta(lambda: archbench.build(hybrid()), 224)



@pytest.mark.parametrize("block", ["mhsa", "cmt"])
def test_key_value_reduction_runs_on_maps_smaller_than_its_kernel(block):
    """A searched hybrid may put sr_ratio 8 where the map is 4×4: keys and values then come from the
    zero-padded map (one token) instead of a crash (PVT's and CMT's reductions alike)."""
    arch = ArchSpec.from_dict(
        {
            "layout": "pyramid",
            "input": {"img_size": 64, "num_classes": 10},
            "stem": {"type": "patchify", "params": {"patch_size": 4}},
            "stages": [
                {"depth": 1, "dim": 32, "block": {"type": block, "params": {"heads": 1, "sr_ratio": 8}}},
                {"depth": 1, "dim": 64, "downsample": DOWN, "block": {"type": block, "params": {"heads": 2, "sr_ratio": 8}}},
            ],
        }
    )
    model = archbench.build(arch).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)  # stage 2: 8×8 map, one key
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)  # stage 2: 4×4 map < kernel 8
