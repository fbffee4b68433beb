"""The builder: shapes at several resolutions, features, init, drop path, backward."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.spec import load_file


def test_isotropic_runs_at_other_grids_with_interpolated_pos_embed():
    model = archbench.build("deit_ti", num_classes=7).eval()
    for h, w in ((224, 224), (160, 160), (96, 128)):
        assert model(torch.randn(1, 3, h, w)).shape == (1, 7)
    tokens, state = model.forward_features(torch.randn(2, 3, 64, 96))
    assert tokens.shape == (2, 1 + 4 * 6, 192) and state.hw == (4, 6) and state.num_prefix_tokens == 1


def test_pyramid_features_and_backward(repo):
    arch = load_file(repo / "examples" / "small_hybrid.yaml")
    model = archbench.build(arch, img_size=64, num_classes=10)
    feats = model.forward_features(torch.randn(2, 3, 64, 64))
    assert feats.shape == (2, 512, 2, 2)
    out = model(torch.randn(2, 3, 96, 64))
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_timm_style_init_and_drop_path_schedule(repo):
    arch = load_file(repo / "examples" / "small_hybrid.yaml")
    model = archbench.build(arch)
    linear = model.stages[3].blocks[0].attn.q
    assert linear.bias.abs().sum() == 0 and 0.015 < linear.weight.std() < 0.025
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates[-1] == pytest.approx(0.1) and rates == sorted(rates)


def test_num_classes_zero_gives_features():
    model = archbench.build("deit_ti", num_classes=0, img_size=32)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 192)
