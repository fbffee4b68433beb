"""Hire-MLP's block: the hierarchical rearrangement against the release's roll/pad formulation,
shapes at two resolutions, and the MAC counters (preset figures: tests/zoo/test_presets.py)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import archbench
from archbench.blocks.hire_mlp import HireBlock, RegionMixer
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.spec import ArchSpec
from archbench.zoo.hire_mlp import hire_mlp


def small_hire(img_size: int = 224) -> ArchSpec:
    data: dict[str, Any] = hire_mlp([16, 32, 48, 64], [2, 2, 3, 2])
    data["input"]["img_size"] = img_size
    return ArchSpec.from_dict(data)


def test_shift_follows_block_index() -> None:
    with torch.device("meta"):
        model = archbench.build("hire_mlp_s")  # depths [3, 4, 10, 3]
    shifts = [[block.hire.mix_h.shift for block in stage.blocks] for stage in model.stages]
    # (block_index mod step_stride) · step_dilation with strides [2, 2, 3, 2], dilations [2, 2, 1, 1].
    assert shifts == [[0, 2, 0], [0, 2, 0, 2], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [0, 1, 0]]
    assert [stage.blocks[0].hire.mix_h.region for stage in model.stages] == [4, 3, 3, 2]


def release_region_mix(x: torch.Tensor, mixer: RegionMixer) -> torch.Tensor:
    """The release's H branch: roll, circular pad, fold regions into channels, MLP, unfold, roll back."""
    B, C, H, W = x.shape
    r, s = mixer.region, mixer.shift
    pad = (r - H % r) % r
    h = F.pad(torch.roll(x, s, 2), (0, 0, 0, pad), mode="circular")
    h = h.reshape(B, C, (H + pad) // r, r, W).permute(0, 1, 3, 2, 4).reshape(B, C * r, (H + pad) // r, W)
    h = mixer.mlp(h)
    h = h.reshape(B, C, r, (H + pad) // r, W).permute(0, 1, 3, 2, 4).reshape(B, C, H + pad, W)
    return torch.roll(h[:, :, :H], -s, 2)


@pytest.mark.parametrize(("region", "shift", "height"), [(4, 2, 14), (3, 1, 14), (3, 2, 7), (2, 0, 7), (4, 2, 4)])
def test_region_mixer_matches_release_roll_and_pad(region: int, shift: int, height: int) -> None:
    torch.manual_seed(0)
    mixer = RegionMixer(8, region, shift).eval()
    x = torch.randn(2, 8, height, 5)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x), release_region_mix(x, mixer))


def test_region_mixer_pads_maps_smaller_than_a_region() -> None:
    mixer = RegionMixer(8, 4, 2).eval()
    x = torch.randn(1, 8, 1, 3)  # 1 row padded to 4: more than F.pad's circular mode allows
    with torch.no_grad():
        out = mixer(x)
        # The region holds four copies of the single row; folded channels are ordered (c, row).
        folded = x.repeat_interleave(4, dim=1)
        expected = mixer.mlp(folded).reshape(1, 8, 4, 1, 3)[:, :, 0]
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("size", [(14, 14), (9, 13)])
def test_block_shape_at_two_resolutions(size: tuple[int, int]) -> None:
    block = HireBlock(16, region=3, shift=1, mlp_ratio=4.0, drop_path=0.0).eval()
    x = torch.randn(2, 16, *size)
    assert block(x).shape == x.shape


def test_model_runs_at_two_resolutions_with_finite_backward() -> None:
    torch.manual_seed(0)
    model = archbench.build(small_hire(), num_classes=10)
    for size in (224, 200):  # 200: stage maps 50, 25, 13, 7 are not multiples of the regions
        logits = model(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 10)
        logits.square().mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        model.zero_grad()


def test_matmul_macs_match_meta_counter() -> None:
    spec = small_hire(160)
    macs = count_macs(archbench.build(spec), 160)
    assert macs.uncounted_ops == {}
    assert macs.matmul_macs == count_macs_meta(lambda: archbench.build(spec), 160)
