"""CaiT: talking-heads blocks and the class-attention head, against timm's cait_xxs24_224."""
from __future__ import annotations

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import archbench
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import SpecError
from archbench.spec import ArchSpec
from archbench.zoo import get
from archbench.zoo.cait import cait


def small() -> ArchSpec:
    data = cait(dim=32, depth=2, heads=4, layer_scale=1e-5, img_size=64)
    data["stem"]["params"]["patch_size"] = 8
    return ArchSpec.from_dict({**data, "name": "cait_small_test", "input": {"img_size": 64, "num_classes": 10}})


def test_params_equal_timm_exactly() -> None:
    with torch.device("meta"):
        ours = count_params(archbench.build(get("cait_xxs24")))
        theirs = count_params(timm.create_model("cait_xxs24_224"))
    assert ours == theirs == 11_956_264


@pytest.mark.slow
def test_matmul_macs_match_timm() -> None:
    macs = count_macs(archbench.build(get("cait_xxs24")), 224)
    assert macs.uncounted_ops == {}
    # timm's Cait cannot go through count_macs_meta: under no_grad its expanded class token has no
    # grad_fn and FlopCounterMode's module tracker rejects it, so count it with grad enabled.
    with torch.device("meta"):
        model = timm.create_model("cait_xxs24_224").eval()
        image = torch.empty(1, 3, 224, 224)
    counter = FlopCounterMode(display=False)
    with counter:
        model(image)
    assert macs.matmul_macs == counter.get_total_flops() // 2 == 2_523_475_200


def test_matmul_macs_match_independent_count() -> None:
    arch = small()
    assert count_macs(archbench.build(arch), 64).matmul_macs == count_macs_meta(lambda: archbench.build(arch), 64)


@pytest.mark.parametrize("img_size", [64, 96])
def test_shapes_and_backward(img_size: int) -> None:
    torch.manual_seed(0)
    model = archbench.build(small())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_class_attention_head_on_a_pyramid() -> None:
    arch = ArchSpec.from_dict(
        {
            "name": "pyramid_with_class_attention",
            "layout": "pyramid",
            "input": {"img_size": 64, "num_classes": 10},
            "stem": {"type": "patchify", "params": {"patch_size": 4}},
            "stages": [
                {"depth": 1, "dim": 16, "block": {"type": "mhsa", "params": {"heads": 2}}},
                {"depth": 1, "dim": 32, "block": {"type": "mhsa", "params": {"heads": 2}}, "downsample": {"type": "conv"}},
            ],
            "head": {"type": "class_attention", "params": {"heads": 4, "depth": 1}},
        }
    )
    assert archbench.build(arch)(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_layer_scale_must_be_positive() -> None:
    data = cait(dim=32, depth=1, heads=4, layer_scale=0.0)
    with pytest.raises(SpecError, match="layer_scale"):
        ArchSpec.from_dict({**data, "name": "bad"})
