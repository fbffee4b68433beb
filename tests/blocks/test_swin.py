"""Swin window attention (Liu et al., ICCV 2021): parity with timm's SwinTransformerBlock and model,
clamped and padded windows at resolutions that are not multiples of 7·32, MAC cross-check."""
from __future__ import annotations

import pytest
import torch
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock

import archbench
from archbench.blocks.swin import SwinBlock, shifted_window_mask
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.registry import BlockContext, lookup
from archbench.spec import ArchSpec
from archbench.zoo import pyramid


def small_spec(img_size: int = 224, window_size: int = 7) -> ArchSpec:
    data = pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[16, 32, 64, 128],
        depths=[2, 2, 2, 2],
        block=lambda i: {"type": "window", "params": {"heads": [1, 2, 4, 8][i], "window_size": window_size}},
        downsample={"type": "patch_merging"},
        img_size=img_size,
    )
    data["name"] = "swin_small_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


def copy_params_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy weights between two modules whose parameters are declared in the same order."""
    src_params, dst_params = list(src.parameters()), list(dst.parameters())
    assert len(src_params) == len(dst_params)
    with torch.no_grad():
        for s, d in zip(src_params, dst_params):
            assert s.shape == d.shape
            d.copy_(s)


def copy_params_in_order_except_table(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    with torch.no_grad():
        for (name, s), d in zip(src.named_parameters(), dst.parameters()):
            if "relative_position_bias_table" not in name:
                d.copy_(s)


def our_block(dim: int, heads: int, resolution: int, block_index: int) -> SwinBlock:
    ctx = BlockContext(dim, "pyramid", 0, block_index, 2, 0.0, (resolution, resolution))
    return lookup("block", "window").factory(ctx, heads=heads, window_size=7, shift=True, mlp_ratio=4.0, qkv_bias=True)


# ---- parity with timm ---------------------------------------------------------------------------
@pytest.mark.parametrize("resolution", [14, 21, 7, 5])
@pytest.mark.parametrize("block_index", [0, 1])
def test_block_matches_timm(resolution: int, block_index: int) -> None:
    # 14, 21: several windows (shifted ones masked); 7: one window, no shift; 5: window clamped to 5.
    shift = 3 if block_index % 2 else 0
    theirs = SwinTransformerBlock(32, (resolution, resolution), num_heads=2, window_size=7, shift_size=shift).eval()
    ours = our_block(32, 2, resolution, block_index).eval()
    copy_params_in_order(theirs, ours)
    x = torch.randn(2, resolution, resolution, 32)
    expected = theirs(x)
    got = ours(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_runtime_clamp_reads_the_centre_of_the_bias_table() -> None:
    # Built for 14x14 (table 13x13), run at 5x5: the 5x5 window must read the learned biases of
    # offsets -4..4, which a timm block built for 5x5 holds as its whole 9x9 table.
    ours = our_block(32, 2, 14, 1).eval()
    theirs = SwinTransformerBlock(32, (5, 5), num_heads=2, window_size=7, shift_size=3).eval()
    copy_params_in_order_except_table(ours, theirs)
    table = ours.attn.relative_position_bias_table.detach().reshape(13, 13, 2)
    with torch.no_grad():
        theirs.attn.relative_position_bias_table.copy_(table[2:11, 2:11].reshape(81, 2))
    x = torch.randn(1, 5, 5, 32)
    torch.testing.assert_close(ours(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), theirs(x), atol=2e-5, rtol=1e-4)


def test_model_matches_timm_swin() -> None:
    theirs = SwinTransformer(
        img_size=224, patch_size=4, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), num_classes=10
    ).eval()
    theirs.patch_embed.norm.eps = 1e-6  # archbench's patchify LayerNorm2d uses 1e-6 (timm's Swin 1e-5)
    ours = archbench.build(small_spec()).eval()
    copy_params_in_order(theirs, ours)
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-4, rtol=1e-4)


def test_mask_matches_timm_for_divisible_size() -> None:
    block = SwinTransformerBlock(8, (14, 14), num_heads=1, window_size=7, shift_size=3)
    ours = shifted_window_mask((14, 14), (7, 7), (3, 3), torch.device("cpu"), torch.float32)
    torch.testing.assert_close(ours, block.attn_mask)


# ---- any resolution ------------------------------------------------------------------------------
def test_window_and_shift_per_size() -> None:
    block = our_block(16, 1, 56, 1)
    assert block.window_and_shift(56, 56) == ((7, 7), (3, 3))
    assert block.window_and_shift(10, 10) == ((7, 7), (3, 3))  # padded to 14
    assert block.window_and_shift(5, 12) == ((5, 7), (0, 3))  # H fits one window: no shift along H
    assert block.window_and_shift(7, 7) == ((7, 7), (0, 0))


@pytest.mark.parametrize("img_size", [224, 160, 96])
def test_forward_backward_at_several_resolutions(img_size: int) -> None:
    # 160 -> maps 40, 20, 10, 5 (padded, padded + shifted, clamped); 96 -> 24, 12, 6, 3.
    model = archbench.build(small_spec(), img_size=img_size)
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_built_at_one_size_runs_at_another() -> None:
    model = archbench.build(small_spec(224)).eval()
    assert model(torch.randn(1, 3, 160, 160)).shape == (1, 10)
    assert model(torch.randn(1, 3, 288, 288)).shape == (1, 10)
    assert model(torch.randn(1, 3, 96, 224)).shape == (1, 10)  # last map 3x7: window (3, 7), no shift


def test_table_clamped_at_build_resolution_like_timm() -> None:
    # At 96 px the last stage is 3x3: timm (and Swin) build a 3x3 window with a 5x5 bias table.
    model = archbench.build(small_spec(96))
    last = model.stages[3].blocks[0]
    assert last.attn.relative_position_bias_table.shape == (25, 8)


# ---- MACs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("img_size", [224, 160])
def test_matmul_macs_match_independent_count(img_size: int) -> None:
    spec = small_spec()
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.by_operator["scaled_dot_product_attention"] > 0
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)
