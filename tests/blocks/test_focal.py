"""Focal self-attention (Yang et al., NeurIPS 2021): preset params against the release's counts,
key layout (fine window, 132-key ring, pooled regions with off-map masks), any-resolution runs, MAC cross-check."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F

import archbench
from archbench.blocks.focal import FocalAttention, FocalBlock, ring_index
from archbench.measure.macs import MacCount, count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import BlockContext, SpecError, lookup
from archbench.spec import ArchSpec
from archbench.zoo import get, pyramid

# Parameter counts of the release's FocalTransformer (classification/focal_transformer.py @57bb303)
# built with the same configs: ours matches them to the parameter.
RELEASE_PARAMS = {"focal_t": 28_880_380, "focal_s": 51_141_940, "focal_b": 89_815_400}


def small_spec(img_size: int = 224, **block: object) -> ArchSpec:
    def block_spec(i: int) -> dict:
        return {"type": "focal", "params": {"heads": [1, 2, 4, 8][i], "focal_window": [7, 5, 3, 1][i], **block}}

    data = pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[16, 32, 64, 128],
        depths=[1, 1, 1, 1],
        block=block_spec,
        downsample={"type": "conv", "params": {"kernel": 2, "norm": "layernorm", "norm_position": "post"}},
        img_size=img_size,
    )
    data["name"] = "focal_small_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


def focal_block(dim: int, heads: int, resolution: int, **params: object) -> FocalBlock:
    ctx = BlockContext(dim, "pyramid", 0, 0, 1, 0.0, (resolution, resolution))
    defaults = dict(heads=heads, window_size=7, expand_size=3, focal_level=2, focal_window=5, focal_pool="fc", mlp_ratio=4.0, qkv_bias=True)
    return lookup("block", "focal").factory(ctx, **{**defaults, **params})


# ---- presets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["focal_t", "focal_s", "focal_b"])
def test_preset_params(name: str) -> None:
    with torch.device("meta"):
        model = archbench.build(name)
    params = count_params(model)
    assert params == RELEASE_PARAMS[name]


@lru_cache(maxsize=None)
def preset_macs(name: str) -> MacCount:
    return count_macs(archbench.build(name), get(name).input.img_size)


@pytest.mark.slow
def test_attention_macs_follow_the_key_layout() -> None:
    # Focal-T at 224: every query attends to 49 window keys, the 132-key ring (stages 1-3; stage 4
    # is one 7x7 window, ring dropped) and focal_window² pooled keys (7², 5², 3², 1²).
    # QKᵀ and AV each cost tokens·C·keys. The release's analytic flops() uses 120 ring keys (the
    # 13×13 - 7×7 ring) although its code attends to 132, hence part of our +1.3% over it.
    count = preset_macs("focal_t")
    stages = [(56 * 56 * 96, 2, 49 + 132 + 49), (28 * 28 * 192, 2, 49 + 132 + 25), (14 * 14 * 384, 6, 49 + 132 + 9), (7 * 7 * 768, 2, 49 + 1)]
    assert count.by_operator["scaled_dot_product_attention"] == sum(2 * tc * depth * keys for tc, depth, keys in stages)


# ---- key layout ---------------------------------------------------------------------------------
def test_ring_keys_are_the_released_132() -> None:
    assert len(ring_index(7, 3)) == 4 * (49 - 16) == 132
    attn = focal_block(32, 2, 56).attn
    assert attn.neighbour_bias.shape == (2, 49, 132)
    # Level-1 pooled region: 5x5 windows, bias table (7 + 5 - 1)².
    assert attn.sides == [5] and attn.window_bias_tables[0].shape == (2, 121)


def test_window_clamps_to_a_small_map_and_drops_the_ring() -> None:
    block = focal_block(32, 2, 7)
    assert block.window_size == 7 and block.attn.expand == 0
    block = focal_block(32, 2, 5, focal_window=1)
    assert block.window_size == 5 and not hasattr(block.attn, "neighbour_bias")


@pytest.mark.parametrize("level", [0, 1])
def test_pool_mask_matches_unfolded_ones(level: int) -> None:
    # The mask is computed arithmetically; the release unfolds a map of ones with the same kernel.
    attn = focal_block(32, 2, 56, focal_level=3).attn
    nh, nw = 3, 4
    kernel, s = attn.kernels[level], attn.strides[level]
    ones = torch.ones(1, 1, nh * s, nw * s)
    cols = F.unfold(ones, kernel, stride=s, padding=kernel // 2).view(kernel, kernel, -1)[s - 1:, s - 1:]
    expected = torch.where(cols.flatten(0, 1).t() > 0, 0.0, -100.0)
    torch.testing.assert_close(attn._pool_mask(level, nh, nw, torch.device("cpu")), expected)


def test_even_focal_window_is_rejected() -> None:
    data = small_spec().to_dict()
    data["stages"][0]["block"]["params"]["focal_window"] = 4
    with pytest.raises(SpecError, match="odd"):
        ArchSpec.from_dict(data)


# ---- any resolution, gradients ------------------------------------------------------------------
@pytest.mark.parametrize("img_size", [224, 160])
def test_forward_shape_at_two_resolutions_and_backward(img_size: int) -> None:
    # Built at 224; 160 pads every stage (40 -> 42, 20 -> 21, 10 -> 14, 5 -> 7).
    model = archbench.build(small_spec(224))
    x = torch.randn(2, 3, img_size, img_size)
    out = model(x)
    assert out.shape == (2, 10)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stages[0].blocks[0].attn.neighbour_bias.grad.abs().sum() > 0


def test_built_small_runs_larger() -> None:
    # Built at 96 (stage 4 is 3x3: window clamped to 3), run at 256 (stage 4 8x8 -> pad to 9).
    model = archbench.build(small_spec(96)).eval()
    assert model.stages[3].blocks[0].window_size == 3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 10)


@pytest.mark.parametrize(
    "params",
    [
        {"focal_pool": "avg"},
        {"focal_pool": "conv"},
        {"focal_pool": "none"},
        {"focal_level": 3},
        {"expand_size": 0, "focal_level": 3, "focal_pool": "avg"},
    ],
)
def test_variants_run(params: dict) -> None:
    model = archbench.build(small_spec(112, **params)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 112, 112))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_fc_pool_starts_as_an_average() -> None:
    attn = archbench.build(small_spec()).stages[0].blocks[0].attn
    assert isinstance(attn, FocalAttention)
    torch.testing.assert_close(attn.pools[0].weight, torch.full((1, 49), 1 / 49))


# ---- MAC cross-check ----------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"focal_level": 3, "focal_pool": "conv"}])
def test_matmul_macs_match_the_meta_counter(params: dict) -> None:
    spec = small_spec(112, **params)
    count = count_macs(archbench.build(spec), 112)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), 112)
