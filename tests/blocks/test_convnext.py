"""ConvNeXt block (Liu et al., CVPR 2022): timm's ConvNeXtBlock through the registry, the convnext_t
preset against timm's convnext_tiny, any resolution, MAC cross-check."""
from __future__ import annotations

import pytest
import timm
import torch

import archbench
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import SpecError
from archbench.spec import ArchSpec
from archbench.zoo import pyramid


def small_spec(kernel: int = 7, layer_scale: float = 1e-6) -> ArchSpec:
    data = pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[16, 32, 48, 64],
        depths=[1, 1, 2, 1],
        block=lambda i: {"type": "convnext", "params": {"kernel": kernel, "layer_scale": layer_scale}},
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "pre"}},
        head={"type": "linear", "params": {"norm_eps": 1e-6}},
    )
    data["name"] = "convnext_small_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


def test_block_params_and_layer_scale() -> None:
    block = archbench.build(small_spec()).stages[0].blocks[0]
    # dw 7x7 (+bias), LN, fc 16->64, fc 64->16, gamma
    assert count_params(block) == 16 * 49 + 16 + 2 * 16 + 16 * 64 + 64 + 64 * 16 + 16 + 16
    torch.testing.assert_close(block.gamma, torch.full((16,), 1e-6))
    assert archbench.build(small_spec(layer_scale=0.0)).stages[0].blocks[0].gamma is None


def test_even_kernel_is_rejected() -> None:
    with pytest.raises(SpecError, match="odd"):
        small_spec(kernel=4)


@pytest.mark.parametrize("img_size", [224, 96, 100])
def test_forward_backward_at_several_resolutions(img_size: int) -> None:
    model = archbench.build(small_spec())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_matmul_macs_match_independent_count() -> None:
    spec = small_spec()
    count = count_macs(archbench.build(spec), 96)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), 96)


# ---- the convnext_t preset against timm's convnext_tiny ------------------------------------------
def test_convnext_t_params_equal_timm() -> None:
    with torch.device("meta"):
        ours = count_params(archbench.build("convnext_t"))
        theirs = count_params(timm.create_model("convnext_tiny", pretrained=False))
    assert ours == theirs == 28_589_128


@pytest.mark.slow
def test_convnext_t_macs_match_timm() -> None:
    count = count_macs(archbench.build("convnext_t"), 224)
    assert count.uncounted_ops == {}
    theirs = count_macs_meta(lambda: timm.create_model("convnext_tiny", pretrained=False), 224)
    assert count.matmul_macs == theirs  # same convs and linears, op for op
    assert abs(count.total / theirs - 1) < 0.01
