"""ConViT's GPSA block (d'Ascoli et al., ICML 2021): parity with timm's GPSA block and ConVit model,
positional indices for any (non-square) grid, locality init surviving the builder, MAC cross-check."""
from __future__ import annotations

import pytest
import torch
from timm.models.convit import GPSA, Block as TimmConvitBlock, ConVit

import archbench
from archbench.blocks.convit import GPSABlock, relative_indices
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.registry import SpecError, TokenState
from archbench.spec import ArchSpec


def small_spec(img_size: int = 64, local_blocks: int = 2, cls_token_stage: int = 1) -> ArchSpec:
    return ArchSpec.from_dict(
        {
            "name": "convit_small_test",
            "layout": "isotropic",
            "input": {"img_size": img_size, "num_classes": 10},
            "stem": {"type": "patchify", "params": {"patch_size": 16}},
            "stages": [
                {"depth": local_blocks, "dim": 64, "block": {"type": "gpsa", "params": {"heads": 4}}},
                {"depth": 2, "dim": 64, "block": {"type": "mhsa", "params": {"heads": 4, "qkv_bias": False}}},
            ],
            "tokens": {"cls_token": True, "pos_embed": True, "cls_token_stage": cls_token_stage},
            "head": {"type": "linear", "params": {"pool": "cls", "norm_eps": 1e-6}},
        }
    )


def copy_params_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    src_params, dst_params = list(src.parameters()), list(dst.parameters())
    assert len(src_params) == len(dst_params)
    with torch.no_grad():
        for s, d in zip(src_params, dst_params):
            assert s.shape == d.shape
            d.copy_(s)


# ---- parity with timm ---------------------------------------------------------------------------
def test_relative_indices_match_timm_on_square_grids() -> None:
    gpsa = GPSA(16, num_heads=4)
    torch.testing.assert_close(relative_indices((5, 5), torch.device("cpu"), torch.float32), gpsa.get_rel_indices(25))


def test_relative_indices_of_a_non_square_grid() -> None:
    rel = relative_indices((2, 3), torch.device("cpu"), torch.float32)[0]  # (6, 6, 3)
    # Patch 0 is (row 0, col 0); patch 5 is (row 1, col 2): Δx = 2, Δy = 1, squared distance 5.
    assert rel.shape == (6, 6, 3)
    assert rel[0, 5].tolist() == [2.0, 1.0, 5.0]
    assert rel[5, 0].tolist() == [-2.0, -1.0, 5.0]


def test_block_matches_timm() -> None:
    theirs = TimmConvitBlock(32, 4, use_gpsa=True).eval()
    ours = GPSABlock(32, 4, 4.0, False, 1.0, 0.0).eval()
    copy_params_in_order(theirs, ours)
    x = torch.randn(2, 49, 32)
    torch.testing.assert_close(ours(x, TokenState(hw=(7, 7))), theirs(x), atol=1e-5, rtol=1e-5)


def test_model_matches_timm_convit() -> None:
    theirs = ConVit(img_size=64, patch_size=16, embed_dim=16, num_heads=4, depth=4, local_up_to_layer=2, num_classes=10).eval()
    ours = archbench.build(small_spec()).eval()
    copy_params_in_order(theirs, ours)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_locality_init_survives_the_builder() -> None:
    model = archbench.build(small_spec())
    attn = model.blocks[0].attn
    torch.testing.assert_close(attn.v.weight, torch.eye(64))
    assert attn.gating_param.tolist() == [1.0] * 4
    # 4 heads: a 2x2 kernel of positional heads, each with weight -1 on the squared distance.
    assert attn.pos_proj.weight[:, 2].tolist() == [-1.0] * 4


# ---- any resolution ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 64), (96, 96), (64, 96)])
def test_forward_backward_at_several_resolutions(size: tuple[int, int]) -> None:
    model = archbench.build(small_spec())
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gpsa_after_the_class_token_is_rejected() -> None:
    with pytest.raises(SpecError, match="cls_token_stage"):
        archbench.build(small_spec(cls_token_stage=0))


# ---- MACs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("img_size", [64, 96])
def test_matmul_macs_match_independent_count(img_size: int) -> None:
    spec = small_spec()
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)
