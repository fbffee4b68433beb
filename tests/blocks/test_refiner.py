"""Refiner: the refiner block in both layouts, the shared attention map, the conv stem, and the
three Refiner-ViT presets against the release's parameter counts (published figures and our pinned
MACs: tests/zoo/test_presets.py)."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import archbench
from archbench.blocks.refiner import RefinerBlock, RefinerStage
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import TokenState
from archbench.spec import ArchSpec
from archbench.zoo import get, published
from archbench.zoo.refiner import refiner_vit

# Unique parameters of the released models (no token-labelling aux head), counted by instantiating
# zhoudaquan/Refiner_ViT's Refiner_ViT_{S,M,L}(return_dense=False); ours load their weights one to one.
RELEASE_PARAMS = {"refiner_vit_s": 25_023_656, "refiner_vit_m": 55_029_932, "refiner_vit_l": 80_637_192}


def isotropic(share: bool = True, depth: int = 4, img_size: int = 64) -> ArchSpec:
    data = refiner_vit(dim=48, depth=depth, heads=4)
    data["stages"][0]["block"]["params"]["share"] = share
    return ArchSpec.from_dict({**data, "name": "refiner_small_test", "input": {"img_size": img_size, "num_classes": 10}})


def pyramid(share: bool = True) -> ArchSpec:
    block: dict[str, Any] = {"type": "refiner", "params": {"heads": 2, "share": share}}
    return ArchSpec.from_dict(
        {
            "name": "refiner_pyramid_test",
            "layout": "pyramid",
            "input": {"img_size": 64, "num_classes": 10},
            "stem": {"type": "patchify", "params": {"patch_size": 8}},
            "stages": [
                {"depth": 3, "dim": 16, "block": block},
                {"depth": 2, "dim": 32, "block": block, "downsample": {"type": "conv"}},
            ],
        }
    )


@pytest.mark.parametrize("name", list(RELEASE_PARAMS))
def test_preset_params_reproduce(name: str) -> None:
    with torch.device("meta"):
        params = count_params(archbench.build(get(name)))
    assert params == RELEASE_PARAMS[name]
    assert published(name).gmacs is None


@pytest.mark.parametrize("arch", [isotropic(share=True), isotropic(share=False), pyramid(share=True)], ids=["iso-shared", "iso-own", "pyramid"])
def test_matmul_macs_match_independent_count(arch: ArchSpec) -> None:
    macs = count_macs(archbench.build(arch), 64)
    assert macs.uncounted_ops == {}
    assert macs.matmul_macs == count_macs_meta(lambda: archbench.build(arch), 64)


@pytest.mark.parametrize("img_size", [64, 96])
@pytest.mark.parametrize("make", [isotropic, pyramid], ids=["isotropic", "pyramid"])
def test_shapes_and_backward(make: Any, img_size: int) -> None:
    torch.manual_seed(0)
    model = archbench.build(make())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_preset_runs_at_another_resolution() -> None:
    model = archbench.build(get("refiner_vit_s"), num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 10)


def test_released_alternation() -> None:
    blocks = archbench.build(isotropic(share=True)).blocks
    for i, block in enumerate(blocks):
        attn = block.attn
        if i % 2:  # shared: no queries or keys, a V-only Linear(D, D), refines the previous map
            assert not hasattr(attn, "qkv") and attn.v.weight.shape == (48, 48) and hasattr(attn, "refiner")
        else:  # computes its own map, left unrefined (apply_transform False in the release)
            assert attn.qkv.weight.shape == (144, 48) and not hasattr(attn, "refiner")
    own = archbench.build(isotropic(share=False)).blocks
    assert all(hasattr(b.attn, "qkv") and hasattr(b.attn, "refiner") for b in own)


def test_shared_block_uses_the_previous_map() -> None:
    torch.manual_seed(0)
    first, shared = archbench.build(isotropic(share=True)).eval().blocks[:2]
    x = torch.randn(2, 17, 48)  # a 4×4 grid plus the class token
    with torch.no_grad():
        tokens = TokenState(hw=(4, 4), num_prefix_tokens=1)
        first(x, tokens)
        attn = tokens.attn
        assert attn.shape == (2, 4, 17, 17)
        out = shared(x, tokens)
        assert tokens.attn is attn  # the shared block hands the incoming map on unchanged
        assert torch.equal(shared(x, TokenState(hw=(4, 4), num_prefix_tokens=1, attn=attn)), out)
        # A different previous map (from different Q/K weights) gives a different output.
        first.attn.qkv.weight.mul_(3.0)
        changed = TokenState(hw=(4, 4), num_prefix_tokens=1)
        first(x, changed)
        assert not torch.allclose(shared(x, changed), out)
        with pytest.raises(RuntimeError, match="previous block's attention map"):
            shared(x, TokenState(hw=(4, 4), num_prefix_tokens=1))


def test_chain_starts_fresh_in_each_stage() -> None:
    torch.manual_seed(0)
    blocks = archbench.build(isotropic(share=True)).eval().blocks
    x = torch.randn(1, 17, 48)
    stale = torch.rand(1, 4, 17, 17)
    with torch.no_grad():
        # The stage's first block ignores any incoming map; the third adds scale × the first's map.
        assert torch.equal(blocks[0](x, TokenState(hw=(4, 4), attn=stale)), blocks[0](x, TokenState(hw=(4, 4))))
        assert not torch.allclose(blocks[2](x, TokenState(hw=(4, 4), attn=stale)), blocks[2](x, TokenState(hw=(4, 4))))


def test_pyramid_stage_is_one_module() -> None:
    model = archbench.build(pyramid())
    first, second = (stage.blocks for stage in model.stages)
    assert isinstance(first[0], RefinerStage) and len(first[0].blocks) == 3
    assert all(isinstance(b, nn.Identity) for b in list(first)[1:])
    assert [hasattr(b.attn, "qkv") for b in first[0].blocks] == [True, False, True]
    assert isinstance(second[0], RefinerStage) and len(second[0].blocks) == 2


def test_release_scales() -> None:
    block = archbench.build(isotropic()).blocks[0]
    assert isinstance(block, RefinerBlock)
    assert block.residual_scale == 0.5
    assert torch.all(block.mlp_scale == 1e-5)


def test_conv_stem() -> None:
    stem = archbench.build(isotropic()).stem
    assert stem.stride == 16
    assert stem(torch.randn(1, 3, 64, 96)).shape == (1, 48, 4, 6)
    assert count_params(stem) == 3 * 32 * 49 + 32 * 64 * 9 + 64 * 128 * 9 + 2 * (32 + 64 + 128) + 128 * 48 * 64 + 48


@pytest.mark.parametrize("share", [True, False])
def test_a_one_token_map_is_not_refined_so_eval_mode_matches_training(share: bool) -> None:
    # A proxy's last stage can be 1×1: a softmax over one key is exactly 1, the same for every
    # image, and BatchNorm over it drifts to zero variance; eval mode then amplified rounding into
    # garbage (83% train-mode vs 5% eval-mode accuracy on a hybrid_vit proxy).
    from archbench.blocks.refiner import RefinerAttention

    torch.manual_seed(0)
    attn = RefinerAttention(16, 2, qkv_bias=True, shared=share, refine=True, expansion=3, kernel=3)
    x = torch.randn(8, 1, 16)
    prev = torch.ones(8, 2, 1, 1)
    for _ in range(200):  # the running statistics of a long training on one-token maps
        attn(x, prev)
    with torch.no_grad():
        trained = attn(x, prev)[0]
        attn.eval()
        evaluated = attn(x, prev)[0]
    assert torch.allclose(trained, evaluated, atol=1e-6)
    assert evaluated.abs().max() < 10
    # Maps of more than one token are refined as before: the refiner changes the output.
    attn.train()
    x2, prev2 = torch.randn(8, 4, 16), torch.rand(8, 2, 4, 4)
    with torch.no_grad():
        refined = attn(x2, prev2)[0]
        del attn.refiner, attn.adapt_bn  # as a block without refinement
        if share:
            return  # a shared block cannot run without its refiner
        assert not torch.allclose(refined, attn(x2, prev2)[0])
