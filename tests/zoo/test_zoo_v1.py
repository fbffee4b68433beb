"""The zoo's first presets, each the twin of a timm model: DeiT, Swin, ConViT, MLP-Mixer, ResMLP.

Parameters equal timm's own model exactly; MACs: our matrix products equal the independent count
of timm's model op for op, our total is within 1% of it (the published figures: test_presets.py).
"""
from __future__ import annotations

import pytest
import timm
import torch

import archbench
from archbench import zoo
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params

SMALL = ["deit_ti", "deit_s", "swin_t", "convit_ti", "convit_s", "resmlp_s12"]
LARGE = ["deit_b", "swin_s", "swin_b", "convit_b", "mixer_b16"]  # > ~5 s each for the MAC count
ZOO_V1 = SMALL + LARGE
TIMM_PARAMS = {"deit_s": 22_050_664, "swin_t": 28_288_354, "mixer_b16": 59_880_472}
# Independent count of timm's models (FlopCounterMode on meta tensors, matrix products only).
TIMM_MATMUL_MACS = {"deit_s": 4_598_882_304, "swin_t": 4_490_566_656}


def test_every_v1_preset_is_registered_with_its_timm_twin() -> None:
    for name in ZOO_V1:
        assert zoo.preset(name).timm_name, name
        assert zoo.preset(name).timm_name in timm.list_models()


@pytest.mark.parametrize("name", ZOO_V1)
def test_params_equal_timm(name: str) -> None:
    with torch.device("meta"):
        ours = count_params(archbench.build(name))
        theirs = count_params(timm.create_model(zoo.preset(name).timm_name, pretrained=False))
    assert ours == theirs, (name, ours, theirs)
    assert ours == TIMM_PARAMS.get(name, ours)


def _check_macs(name: str) -> None:
    spec = zoo.get(name)
    count = count_macs(archbench.build(spec), spec.img_size)
    theirs = count_macs_meta(lambda: timm.create_model(zoo.preset(name).timm_name, pretrained=False), spec.img_size)
    assert count.uncounted_ops == {}, count.uncounted_ops
    # The independent counter sees matrix products only; ours adds norms and the like (< 0.5%).
    assert count.matmul_macs == theirs == TIMM_MATMUL_MACS.get(name, theirs), (name, count.matmul_macs, theirs)
    assert abs(count.total / theirs - 1) < 0.01, (name, count.total, theirs)


@pytest.mark.parametrize("name", SMALL)
def test_macs_match_timm(name: str) -> None:
    _check_macs(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_macs_match_timm_large(name: str) -> None:
    _check_macs(name)
