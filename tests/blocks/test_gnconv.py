"""HorNet's gnConv block: shapes at two resolutions, the global filter's FFT path, and the two MAC
counters against each other (published figures of the presets: tests/zoo/test_presets.py)."""
from __future__ import annotations

from typing import Any

import pytest
import torch

import archbench
from archbench.blocks.gnconv import GlobalLocalFilter, GnConv, HorNetBlock
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.registry import BlockContext, SpecError, lookup
from archbench.spec import ArchSpec
from archbench.zoo.hornet import hornet


def small_hornet(global_filter: bool, img_size: int = 224) -> ArchSpec:
    """HorNet's layout at C = 16 and depths [1, 1, 2, 1]: every order 2–5, GF in stages 3–4."""
    data: dict[str, Any] = hornet(16, global_filter)
    for stage, depth in zip(data["stages"], [1, 1, 2, 1]):
        stage["depth"] = depth
    data["input"]["img_size"] = img_size
    return ArchSpec.from_dict(data)


def block_ctx(dim: int, resolution: tuple[int, int]) -> BlockContext:
    return BlockContext(dim=dim, layout="pyramid", stage_index=2, block_index=0, stage_depth=1, drop_path=0.0, resolution=resolution)


@pytest.mark.slow
def test_gf_preset_counts_its_ffts() -> None:
    macs = count_macs(archbench.build("hornet_t_gf"), 224)
    assert macs.uncounted_ops == {}
    # Elements × ⌈log2(spatial size)⌉ of each transform's input: stage 3 is 18 blocks × 240 filtered
    # channels at 14×14 (half spectrum 14×8), stage 4 is 2 blocks × 496 channels at 7×7 (7×4).
    assert macs.by_operator["fft_rfft2"] == 18 * 240 * 14 * 14 * 8 + 2 * 496 * 7 * 7 * 6
    assert macs.by_operator["fft_irfft2"] == 18 * 240 * 14 * 8 * 7 + 2 * 496 * 7 * 4 * 5


def test_gf_filter_is_sized_by_resolution() -> None:
    with torch.device("meta"):
        model = archbench.build("hornet_t_gf")
    stage3 = model.stages[2].blocks[0].gnconv.spatial
    stage4 = model.stages[3].blocks[0].gnconv.spatial
    assert isinstance(stage3, GlobalLocalFilter)
    assert stage3.complex_weight.shape == (240, 14, 8, 2)  # order 4 at C=256: Σ dims = 480, half filtered
    assert stage4.complex_weight.shape == (496, 7, 4, 2)
    assert isinstance(model.stages[0].blocks[0].gnconv.spatial, torch.nn.Conv2d)


def test_gnconv_order_dims_and_projections() -> None:
    block = lookup("block", "gnconv").factory(block_ctx(64, (14, 14)), order=4, kernel=7, filter="dwconv", scale=1 / 3, mlp_ratio=4.0, layer_scale=1e-6)
    assert isinstance(block, HorNetBlock) and isinstance(block.gnconv, GnConv)
    assert block.gnconv.dims == [8, 16, 32, 64]
    assert [(pw.in_channels, pw.out_channels) for pw in block.gnconv.pws] == [(8, 16), (16, 32), (32, 64)]
    assert block.gnconv.spatial.in_channels == 120 and block.gnconv.spatial.kernel_size == (7, 7)


@pytest.mark.parametrize("filter", ["dwconv", "gf"])
def test_block_shape_at_two_resolutions(filter: str) -> None:
    block = lookup("block", "gnconv").factory(block_ctx(32, (14, 14)), order=3, kernel=7, filter=filter, scale=1 / 3, mlp_ratio=4.0, layer_scale=1e-6)
    for size in [(14, 14), (10, 13)]:  # the second needs the global filter resampled
        x = torch.randn(2, 32, *size)
        assert block(x).shape == x.shape


def test_global_filter_of_ones_passes_the_global_half_unchanged() -> None:
    layer = GlobalLocalFilter(8, (12, 12))
    with torch.no_grad():
        layer.complex_weight.zero_()
        layer.complex_weight[..., 0] = 1.0  # 1 + 0i everywhere: irfft2(rfft2(x)) = x
        layer.post_norm = torch.nn.Identity()
        x = torch.randn(2, 8, 12, 12)
        normed = layer.pre_norm(x)
        out = layer(x)
    # Output channels interleave (local, global): odd channels are the global half.
    torch.testing.assert_close(out[:, 1::2], normed[:, 4:], atol=1e-5, rtol=1e-5)
    # At another size the filter is resampled: a constant filter stays constant, so still identity.
    with torch.no_grad():
        x = torch.randn(1, 8, 9, 16)
        torch.testing.assert_close(layer(x)[:, 1::2], layer.pre_norm(x)[:, 4:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("global_filter", [False, True])
def test_model_runs_at_two_resolutions_with_finite_backward(global_filter: bool) -> None:
    torch.manual_seed(0)
    model = archbench.build(small_hornet(global_filter), num_classes=10)
    for size in (224, 160):
        logits = model(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 10)
        logits.square().mean().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        model.zero_grad()
    if global_filter:
        assert model.stages[2].blocks[0].gnconv.spatial.complex_weight.shape == (60, 14, 8, 2)


@pytest.mark.parametrize("global_filter", [False, True])
def test_matmul_macs_match_meta_counter(global_filter: bool) -> None:
    # FlopCounterMode counts no FFTs; matmul_macs is the non-FFT (matrix product and conv) part.
    spec = small_hornet(global_filter)
    macs = count_macs(archbench.build(spec), 224)
    assert macs.uncounted_ops == {}
    assert macs.matmul_macs == count_macs_meta(lambda: archbench.build(spec), 224)
    assert ("fft_rfft2" in macs.by_operator) == global_filter


def test_layer_scale_and_zero_disable() -> None:
    block = lookup("block", "gnconv").factory(block_ctx(16, (8, 8)), order=2, kernel=7, filter="dwconv", scale=1 / 3, mlp_ratio=4.0, layer_scale=0.0)
    assert isinstance(block.gamma1, torch.nn.Identity)
    model = archbench.build(small_hornet(False))
    assert torch.all(model.stages[0].blocks[0].gamma1.gamma == 1e-6)


def test_spec_rejects_order_that_does_not_divide_dim() -> None:
    data = hornet(24, False)
    data["stages"][0]["block"]["params"]["order"] = 5  # C = 24 does not split into C/16
    with pytest.raises(SpecError, match="2\\^\\(order-1\\)"):
        ArchSpec.from_dict(data)


def test_spec_rejects_gf_with_odd_channel_sum() -> None:
    data = hornet(24, True)  # stage 3: C = 96, order 4 → Σ dims = 12 + 24 + 48 + 96 = 180: fine
    data["stages"][2]["dim"] = 72  # Σ dims = 9 + 18 + 36 + 72 = 135 cannot be halved
    with pytest.raises(SpecError, match="halves"):
        ArchSpec.from_dict(data)
