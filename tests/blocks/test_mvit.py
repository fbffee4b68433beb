"""MViTv2 pooling attention (Li et al., CVPR 2022): timm's models as twins (parameters, state-dict
layout, outputs), other resolutions, the pooling modes, MAC cross-checks."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

import archbench
from archbench.blocks.mvit import relative_offsets, resize_table
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import SpecError
from archbench.spec import ArchSpec
from archbench.zoo import get, preset
from archbench.zoo.mvit import mvitv2

TIMM_PARAMS = {"mvitv2_t": 24_173_320, "mvitv2_s": 34_870_216, "mvitv2_b": 51_472_744}


def small(img_size: int = 64, **block: object) -> ArchSpec:
    data = mvitv2([1, 2, 2, 2], dim=16, heads=1, img_size=img_size)
    for stage in data["stages"]:
        stage["block"]["params"].update(block)
        if stage["downsample"]:
            stage["downsample"]["params"].update(block)
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict({**data, "name": "mvit_small_test"})


def timm_small() -> MultiScaleVit:
    return MultiScaleVit(MultiScaleVitCfg(depths=(1, 2, 2, 2), embed_dim=16, num_heads=1), img_size=64, num_classes=10)


def timm_key(ours: str, depths: tuple[int, ...]) -> str:
    """Our state-dict key -> timm's: the stem is timm's patch embedding, a stage's downsampling layer
    is timm's first block of that stage, the head's norm is timm's final norm."""
    parts = ours.split(".")
    if parts[0] == "stem":
        return "patch_embed." + ".".join(parts[1:])
    if parts[:2] == ["head", "norm"]:
        return "norm." + parts[2]
    if parts[0] == "stages":
        stage = int(parts[1])
        if parts[2] == "downsample":
            return f"stages.{stage}.blocks.0." + ".".join(parts[3:])
        index = int(parts[3]) + (stage > 0)
        return f"stages.{stage}.blocks.{index}." + ".".join(parts[4:])
    return ours


@pytest.mark.parametrize("name", ["mvitv2_t", "mvitv2_s", "mvitv2_b"])
def test_params_and_state_dict_layout_equal_timm(name: str) -> None:
    with torch.device("meta"):
        ours = archbench.build(name)
        theirs = timm.create_model(preset(name).timm_name)
    assert count_params(ours) == count_params(theirs) == TIMM_PARAMS[name]
    depths = tuple(s.depth + (i > 0) for i, s in enumerate(get(name).stages))
    mine = {timm_key(k, depths): tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(mine) == list(theirs.state_dict())  # same declaration order, key for key


def test_outputs_equal_timm_with_its_weights() -> None:
    torch.manual_seed(0)
    theirs = timm_small().eval()
    ours = archbench.build(small()).eval()
    state = theirs.state_dict()
    ours.load_state_dict({k: state[timm_key(k, (1, 2, 2, 2))] for k in ours.state_dict()})
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("img_size", [64, 96])
def test_shapes_and_backward(img_size: int) -> None:
    # 96 px: maps 24/12/6/3, the relative-position tables (built for 64 px) are interpolated.
    torch.manual_seed(0)
    model = archbench.build(small())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    features = model.forward_features(torch.randn(1, 3, img_size, img_size))
    assert features.shape == (1, 128, img_size // 32, img_size // 32)


def test_odd_and_non_square_maps() -> None:
    model = archbench.build(small()).eval()
    assert model(torch.randn(1, 3, 80, 112)).shape == (1, 10)  # maps 20x28, 10x14, 5x7, 3x4


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_max_and_avg_pooling_have_no_pooling_weights(mode: str) -> None:
    conv, pooled = archbench.build(small()), archbench.build(small(mode=mode, residual_pooling=False, rel_pos=False))
    assert not any("pool_" in k or "norm_q" in k or "rel_pos" in k for k, _ in pooled.named_parameters())
    assert count_params(conv) > count_params(pooled)
    assert pooled(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_resize_table_is_linear_interpolation() -> None:
    table = torch.randn(27, 8)
    expected = F.interpolate(table.T.unsqueeze(0), size=47, mode="linear", align_corners=False)[0].T
    torch.testing.assert_close(resize_table(table, 47), expected)
    assert resize_table(table, 27) is table


def test_relative_offsets_of_a_pooled_axis() -> None:
    # 4 queries against 2 keys pooled by 2: key j sits at 2j on the query axis (MViTv2 Eq. 4).
    assert relative_offsets(4, 2, torch.device("cpu")).tolist() == [[2, 0], [3, 1], [4, 2], [5, 3]]


@pytest.mark.parametrize("img_size", [64, 96])
def test_matmul_macs_match_independent_count(img_size: int) -> None:
    spec = small()
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.by_operator["scaled_dot_product_attention"] > 0 and count.by_operator["bmm"] > 0
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)


@pytest.mark.slow
def test_matmul_macs_equal_timm_model() -> None:
    spec = get("mvitv2_t")
    count = count_macs(archbench.build(spec), 224)
    theirs = count_macs_meta(lambda: timm.create_model("mvitv2_tiny"), 224)
    assert count.matmul_macs == theirs == 4_676_957_952
    assert abs(count.total / theirs - 1) < 0.01


def test_even_kernel_is_refused() -> None:
    with pytest.raises(SpecError, match="pooling kernel must be odd"):
        small(kernel=2)
