"""Data-mixing rules: the label arithmetic of each on hand-made attention maps and masks, the blocks'
attention-map protocol against timm's explicit attention, and the rule a training records (with the
area fallback for models without class-token attention)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import archbench
from archbench import zoo
from archbench.blocks._common import AttentionMap
from archbench.errors import UserError
from archbench.search.options import SearchOptions
from archbench.train import TrainConfig, load_dataset, scale_arch, train_proxy
from archbench.train.mixing import (
    _move_windows,
    attention_blocks,
    box_mask,
    keeping_attention,
    mix_rule,
    mixed_target,
    smmix_windows,
    tl_align_target,
    tokenmix_mask,
    transmix_lambda,
)


def test_mixed_target_is_timms_smoothed_pair() -> None:
    # K = 4, smoothing 0.1: on 0.925, off 0.025; image 0 (label 0) is paired with image 1 (label 1).
    target = mixed_target(torch.tensor([0, 1]), 4, 0.7, 0.1)
    assert target[0].tolist() == pytest.approx([0.7 * 0.925 + 0.3 * 0.025, 0.7 * 0.025 + 0.3 * 0.925, 0.025, 0.025])
    assert target.sum(1).tolist() == pytest.approx([1.0, 1.0])
    per_image = mixed_target(torch.tensor([0, 1]), 2, torch.tensor([1.0, 0.25]), 0.0)
    assert per_image.tolist() == [[1.0, 0.0], [0.75, 0.25]]  # image 1's partner is image 0 (label 0)


def test_transmix_weights_the_pasted_box_by_class_attention() -> None:
    attn = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])  # class token -> 4 patches
    pasted = torch.tensor([0.0, 0.0, 0.0, 1.0])  # the box covers the last patch: area share 0.25
    # Attention shares in the box: 0.4 and 0.1; TransMix's release averages them with the area.
    assert transmix_lambda(attn, pasted, 0.25).tolist() == pytest.approx([0.325, 0.175])
    # Attention the class token gives itself is left out: only the patches' shares count.
    assert transmix_lambda(attn / 2, pasted, 0.25).tolist() == pytest.approx([0.325, 0.175])


def test_tl_align_traces_labels_through_each_block() -> None:
    # Block 1: two patch tokens, no class token; block 2: the class token joins with the area label.
    first = AttentionMap(torch.tensor([[[0.5, 0.5], [0.0, 1.0]]]), 0, (1, 2))
    second = AttentionMap(torch.tensor([[[0.2, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]), 1, (1, 2))
    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # After block 1: patch 0 = ((0.5, 0.5) + (1, 0)) / 2 = (0.75, 0.25). After block 2, the class
    # token: (0.2·(0.5, 0.5) + 0.8·(0.75, 0.25) + (0.5, 0.5)) / 2 = (0.6, 0.4).
    target = tl_align_target([first, second], patches, torch.tensor([[0.5, 0.5]]))
    assert target.tolist() == [pytest.approx([0.6, 0.4])]
    assert tl_align_target([first], patches, torch.tensor([[0.5, 0.5]])) is None  # no class token: no target


def test_tokenmix_mask_covers_half_the_grid_plus_the_minimum_in_separated_parts() -> None:
    from scipy import ndimage

    masks = [tokenmix_mask(14, 14, np.random.default_rng(seed)) for seed in range(5)]
    assert [int(m.sum()) for m in masks] == [112] * 5  # int(0.5 · 196) + 14, TokenMix's release at 14×14
    assert max(ndimage.label(m.numpy())[1] for m in masks) > 1  # several separated parts, not one box


def test_box_mask_kept_share_matches_its_cells() -> None:
    np.random.seed(0)
    cells, kept = box_mask(8, 8, 0.6)
    assert kept == pytest.approx(1 - float(cells.mean())) and 0 < cells.sum() < 64


def test_smmix_cuts_where_the_source_attends_most_and_pastes_where_the_target_attends_least() -> None:
    attn = torch.stack([torch.arange(16.0).reshape(4, 4), torch.arange(16.0).flip(0).reshape(4, 4)])
    paste_at, cut_from = smmix_windows(attn, 2)
    assert paste_at.tolist() == [[0, 0], [2, 2]] and cut_from.tolist() == [[2, 2], [0, 0]]
    x = torch.stack([torch.zeros(1, 4, 4), torch.arange(16.0).reshape(1, 4, 4)])  # grid 2×2 of 2-px patches
    mixed = _move_windows(x, torch.tensor([[0, 0], [1, 1]]), torch.tensor([[1, 1], [0, 0]]), 1, (2, 2))
    assert mixed[0, 0].tolist() == [[10.0, 11.0, 0, 0], [14.0, 15.0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert mixed[1, 0, 2:, 2:].tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_mhsa_keeps_timms_explicit_attention() -> None:
    proxy = scale_arch(zoo.get("deit_ti"), width_mult=0.25, depth_mult=1.0, img_size=32, num_classes=10)
    model = archbench.build(proxy).eval()
    block = attention_blocks(model)[0]
    block.attn.fused_attn = False  # timm's explicit path: the softmax enters attn_drop
    seen: list[torch.Tensor] = []
    block.attn.attn_drop.register_forward_hook(lambda _m, args, _out: seen.append(args[0].mean(1)))
    with keeping_attention([block]), torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    kept = block.last_attention
    assert len(attention_blocks(model)) == 12 and kept.prefix == 1 and kept.hw == (2, 2)
    assert torch.allclose(kept.probs, seen[0], atol=1e-6)
    assert not block.keep_attention  # switched off again: no extra work in later forwards


def test_gpsa_keeps_its_gated_renormalised_map() -> None:
    proxy = scale_arch(zoo.get("convit_ti"), width_mult=0.25, depth_mult=1.0, img_size=32, num_classes=10)
    model = archbench.build(proxy).eval()
    blocks = attention_blocks(model)
    assert [type(b).__name__ for b in blocks] == ["GridGPSA"] * 10 + ["MHSABlock"] * 2  # ConViT-Ti: 10 GPSA, 2 MHSA
    gpsa = blocks[0]
    seen: list[torch.Tensor] = []
    # After the forward, timm's get_attention reads the grid's relative positions this forward set.
    gpsa.register_forward_hook(lambda module, args, _out: seen.append(module.get_attention(args[0]).mean(1)))
    with keeping_attention(blocks), torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert gpsa.last_attention.prefix == 0 and blocks[-1].last_attention.prefix == 1  # the class token joins after GPSA
    assert torch.allclose(gpsa.last_attention.probs, seen[0], atol=1e-6)


@pytest.fixture(scope="module")
def digits32():
    return load_dataset("digits", img_size=32, seed=0)


@pytest.mark.parametrize(
    ("arch", "mix", "used"),
    [
        ("deit_ti", "transmix", "transmix"),
        ("deit_ti", "tl-align", "tl-align"),
        ("deit_ti", "smmix", "smmix"),
        ("deit_ti", "tokenmix", "tokenmix"),
        ("convit_ti", "tl-align", "tl-align"),  # traced through GPSA, then MHSA once the class token joins
        ("convnext_t", "transmix", "transmix (area fallback)"),
        ("convnext_t", "tl-align", "tl-align (area fallback)"),
        ("convnext_t", "smmix", "smmix (area fallback)"),
    ],
)
def test_training_records_the_rule_it_used(arch: str, mix: str, used: str, digits32) -> None:
    config = TrainConfig(dataset="digits", epochs=1, proxy_img_size=32, proxy_width_mult=0.25, proxy_depth_mult=0.25,
                         train_images=256, device="cpu", threads=1, mix=mix)
    data = digits32.with_train_images(256)
    result = train_proxy(config.proxy_of(zoo.get(arch), data), data, config)
    assert result.mix_rule == used and result.record_fields()["mix_rule"] == used
    assert 0.0 <= result.val_acc <= 1.0


def test_mix_settings() -> None:
    assert mix_rule(TrainConfig(mix="cutmix", cutmix=0.5), 10).mix.cutmix_alpha == 0.5
    assert mix_rule(TrainConfig(mix="cutmix"), 10).mix.cutmix_alpha == 1.0  # DeiT's alpha
    with pytest.raises(UserError, match="--mix must be one of none, mixup, cutmix, transmix"):
        TrainConfig(mix="puzzlemix")
    with pytest.raises(UserError, match="batch_size must be even"):
        TrainConfig(mix="transmix", batch_size=33)
    # A manifest written before --mix existed resumes with no mixing; the key appears only when set.
    assert SearchOptions.from_dict({"trials": 3}).train.mix == "none"
    assert "mix" not in SearchOptions().to_dict() and SearchOptions.from_dict({"mix": "smmix"}).to_dict()["mix"] == "smmix"
