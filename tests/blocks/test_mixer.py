"""MLP-Mixer and ResMLP blocks (Tolstikhin et al., 2021; Touvron et al., 2022): parity with timm's
MlpMixer models, both layouts, token-mixing weights resampled at other grids, MAC cross-check."""
from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

import archbench
from archbench.blocks.mixer import ResMLPLayer, resample_in, resample_out
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.registry import TokenState
from archbench.spec import ArchSpec
from archbench.zoo import pyramid

BLOCKS = {
    "mixer": {"type": "mixer", "params": {"tokens_mlp_ratio": 0.5, "mlp_ratio": 4.0}},
    "resmlp": {"type": "resmlp", "params": {"mlp_ratio": 4.0, "layer_scale": 0.1}},
}


def isotropic_spec(block: str, img_size: int = 64, cls_token: bool = False) -> ArchSpec:
    return ArchSpec.from_dict(
        {
            "name": f"{block}_small_test",
            "layout": "isotropic",
            "input": {"img_size": img_size, "num_classes": 10},
            "stem": {"type": "patchify", "params": {"patch_size": 16}},
            "stages": [{"depth": 2, "dim": 32, "block": BLOCKS[block]}],
            "tokens": {"cls_token": cls_token, "pos_embed": False},
            "head": {
                "type": "linear",
                "params": {"pool": "avg", "norm": "affine" if block == "resmlp" else "layernorm", "norm_eps": 1e-6},
            },
        }
    )


def pyramid_spec(block: str, img_size: int = 64) -> ArchSpec:
    data: dict[str, Any] = pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        block=lambda i: BLOCKS[block],
        downsample={"type": "conv", "params": {"kernel": 2}},
        img_size=img_size,
    )
    data["name"] = f"{block}_pyramid_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


def copy_params_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    src_params, dst_params = list(src.parameters()), list(dst.parameters())
    assert len(src_params) == len(dst_params)
    with torch.no_grad():
        for s, d in zip(src_params, dst_params):
            assert s.shape == d.shape
            d.copy_(s)


# ---- parity with timm ---------------------------------------------------------------------------
def test_mixer_model_matches_timm() -> None:
    theirs = MlpMixer(num_classes=10, img_size=64, patch_size=16, num_blocks=2, embed_dim=32).eval()
    ours = archbench.build(isotropic_spec("mixer")).eval()
    copy_params_in_order(theirs, ours)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_resmlp_model_matches_timm() -> None:
    theirs = MlpMixer(
        num_classes=10, img_size=64, patch_size=16, num_blocks=2, embed_dim=32, mlp_ratio=4,
        block_layer=partial(ResBlock, init_values=0.1), norm_layer=Affine,
    ).eval()
    ours = archbench.build(isotropic_spec("resmlp")).eval()
    torch.testing.assert_close(ours.blocks[0].ls1, torch.full((32,), 0.1))  # LayerScale init as specified
    copy_params_in_order(theirs, ours)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


# ---- resampling the token-mixing weights ---------------------------------------------------------
def test_resampling_is_identity_at_the_build_grid() -> None:
    w = torch.randn(5, 16)
    assert resample_in(w, (4, 4), (4, 4)) is w
    wt = w.T
    assert resample_out(wt, (4, 4), (4, 4)) is wt


def test_resampling_shapes() -> None:
    w = torch.randn(16, 16)
    assert resample_in(w, (4, 4), (6, 8)).shape == (16, 48)
    assert resample_out(w, (4, 4), (6, 8)).shape == (48, 16)
    assert resample_out(torch.randn(16), (4, 4), (2, 3)).shape == (6,)


def test_resampling_keeps_a_smooth_mixing_unchanged() -> None:
    # A constant token map (mean-like mixing) on a constant image must give the same output at any
    # grid: the input-axis rescale by N / N' is what keeps the sum's magnitude.
    block = ResMLPLayer(8, (4, 4), mlp_ratio=2.0, layer_scale=0.1, drop_path=0.0).eval()
    with torch.no_grad():
        block.linear_tokens.weight.fill_(0.05)
        block.linear_tokens.bias.fill_(0.3)
    x = torch.randn(1, 1, 8)
    at_build = block(x.expand(1, 16, 8), TokenState(hw=(4, 4)))
    at_larger = block(x.expand(1, 48, 8), TokenState(hw=(6, 8)))
    at_smaller = block(x.expand(1, 4, 8), TokenState(hw=(2, 2)))
    torch.testing.assert_close(at_larger, at_build[:, :1].expand(1, 48, 8))
    torch.testing.assert_close(at_smaller, at_build[:, :4])


def test_resampled_weights_receive_gradients() -> None:
    model = archbench.build(isotropic_spec("mixer"), img_size=64)
    model(torch.randn(1, 3, 96, 96)).sum().backward()
    assert model.blocks[0].mlp_tokens.fc1.weight.grad.abs().sum() > 0


# ---- layouts and resolutions ---------------------------------------------------------------------
@pytest.mark.parametrize("block", ["mixer", "resmlp"])
@pytest.mark.parametrize("layout", ["isotropic", "pyramid"])
@pytest.mark.parametrize("img_size", [64, 96])
def test_forward_backward_at_several_resolutions(block: str, layout: str, img_size: int) -> None:
    spec = isotropic_spec(block) if layout == "isotropic" else pyramid_spec(block)
    model = archbench.build(spec)  # built at 64, run at 64 and 96 (token weights resampled)
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("block", ["mixer", "resmlp"])
def test_class_token_skips_token_mixing(block: str) -> None:
    model = archbench.build(isotropic_spec(block, cls_token=True))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert model.blocks[0].grid == (4, 4)  # the token map is sized by the patch grid only


# ---- MACs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", ["mixer", "resmlp"])
@pytest.mark.parametrize("layout", ["isotropic", "pyramid"])
def test_matmul_macs_match_independent_count(block: str, layout: str) -> None:
    spec = isotropic_spec(block) if layout == "isotropic" else pyramid_spec(block)
    for img_size in (64, 96):
        count = count_macs(archbench.build(spec), img_size)
        assert count.uncounted_ops == {}
        assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)
