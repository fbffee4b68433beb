"""RegionViT (Chen et al., ICLR 2022): presets against the release's figures, the R2L block against a
per-window reference, two-stream shapes at several resolutions, MAC cross-check and hybrids."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import archbench
from archbench import zoo
from archbench.blocks.regional import R2LBlock, RegionViTDownsample
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.spec import ArchSpec
from archbench.zoo import pyramid

PRESETS = ["regionvit_ti", "regionvit_s", "regionvit_m", "regionvit_b"]


def small_spec(img_size: int = 224, local_stem: str = "3conv", depths: tuple[int, ...] = (1, 1, 2, 1)) -> ArchSpec:
    data = pyramid(
        stem={"type": "regionvit", "params": {"local_stem": local_stem}},
        dims=[16, 32, 64, 128],
        depths=list(depths),
        block=lambda i: {"type": "regional", "params": {"heads": [1, 2, 2, 4][i]}},
        downsample={"type": "regionvit"},
        head={"type": "regionvit"},
        img_size=img_size,
    )
    data["name"] = "regionvit_small_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


# ---- presets -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_published_macs_are_the_matrix_products(name: str) -> None:
    # Within tolerance of the README is checked in tests/zoo/test_presets.py; this is why it is.
    model = archbench.build(name)
    count = count_macs(model, zoo.get(name).img_size)
    published = zoo.published(name).gmacs
    # The convention (see the presets' note): the README's one-decimal figures are exactly the
    # matrix products (convs, linears, regional and local attention) rounded; without attention,
    # S (5.20) and M (7.22) would miss.
    assert f"{count.matmul_macs / 1e9:.1f}" == published
    assert count.by_operator["scaled_dot_product_attention"] > 0


# ---- shapes, gradients, resolutions --------------------------------------------------------------
@pytest.mark.parametrize("img_size", [224, 160, 256, 200])
@pytest.mark.parametrize("local_stem", ["3conv", "1conv"])
def test_forward_backward_at_several_resolutions(img_size: int, local_stem: str) -> None:
    # 224 = 8 regional tokens × 28; 160 and 200 leave partly padded windows (local 40, 50 -> 42, 56).
    model = archbench.build(small_spec(224, local_stem), img_size=img_size)
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_stem_streams_and_regional_grid() -> None:
    stem = archbench.build(small_spec()).stem
    local, regional = stem(torch.randn(1, 3, 160, 160))
    assert stem.stride == 4 and stem.carries_regional
    assert local.shape == (1, 16, 40, 40)
    assert regional.shape == (1, 16, 6, 6)  # ceil(160 / 28): the image is padded to 168


def test_block_matches_per_window_reference_with_padding() -> None:
    torch.manual_seed(0)
    window, dim, heads = 3, 8, 2
    block = R2LBlock(dim, heads, window, mlp_ratio=2.0, qkv_bias=True, drop_path=0.0).eval()
    local = torch.randn(2, dim, 5, 4)  # regional grid 2×2, local map padded to 6×6
    regional = torch.randn(2, dim, 2, 2)
    out_local, out_regional = block((local, regional))
    ref_local, ref_regional = _reference_r2l(block, local, regional)
    torch.testing.assert_close(out_local, ref_local, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_regional, ref_regional, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("size", "grid"),
    [((1, 1), (1, 1)), ((2, 3), (1, 1)), ((3, 3), (1, 1)), ((2, 5), (1, 2)), ((5, 1), (2, 1))],
    ids=["1x1", "2x3", "whole_window", "one_region_high", "one_region_wide"],
)
def test_block_on_maps_smaller_than_the_window_matches_the_reference(size: tuple[int, int], grid: tuple[int, int]) -> None:
    # Along an axis with one region the block crops its window to the map instead of padding it
    # (a 32 px proxy's last stage is 1×1 under a window of 7); the result must not change.
    torch.manual_seed(1)
    window, dim, heads = 3, 8, 2
    block = R2LBlock(dim, heads, window, mlp_ratio=2.0, qkv_bias=True, drop_path=0.0).eval()
    local, regional = torch.randn(2, dim, *size), torch.randn(2, dim, *grid)
    out_local, out_regional = block((local, regional))
    ref_local, ref_regional = _reference_r2l(block, local, regional)
    torch.testing.assert_close(out_local, ref_local, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_regional, ref_regional, atol=1e-5, rtol=1e-5)


class PaddedR2LBlock(R2LBlock):
    """The block as released: every region padded to the whole window."""

    def window_extent(self, size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
        return (self.window, self.window)


def test_cropping_gives_the_padded_windows_result() -> None:
    # The released computation (pad to 7×7, mask the padding) on the maps of a 32 px proxy.
    torch.manual_seed(2)
    block = R2LBlock(16, 2, 7, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0).eval()
    padded = PaddedR2LBlock(16, 2, 7, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0).eval()
    padded.load_state_dict(block.state_dict())
    for side in (1, 2, 4):
        x = (torch.randn(2, 16, side, side), torch.randn(2, 16, 1, 1))
        for ours, released in zip(block(x), padded(x)):
            torch.testing.assert_close(ours, released, atol=1e-5, rtol=1e-5)


def test_a_cropped_window_attends_only_real_tokens() -> None:
    # 1×1 local map, window 7: one regional and one local token per image (not 1 + 49).
    block = R2LBlock(8, 2, 7, mlp_ratio=2.0, qkv_bias=True, drop_path=0.0).eval()
    seen: list[tuple[int, ...]] = []
    block.mlp.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    block((torch.randn(3, 8, 1, 1), torch.randn(3, 8, 1, 1)))
    assert seen == [(3, 2, 8)]
    assert block.attn.local_bias((1, 1)).shape == (2, 2, 2)


def _reference_r2l(block: R2LBlock, local: torch.Tensor, regional: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop over regions, attend only among real tokens, bias looked up by (key - query) offset."""
    attn, w = block.attn, block.window
    span = 2 * w - 1

    def attend(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        n, c = x.shape
        q, k, v = attn.qkv(x).reshape(n, 3, attn.heads, c // attn.heads).permute(1, 2, 0, 3)
        logits = q @ k.transpose(-2, -1) * (c // attn.heads) ** -0.5
        if bias is not None:
            logits = logits + bias
        return attn.proj((logits.softmax(-1) @ v).transpose(0, 1).reshape(n, c))

    B, C, H, W = local.shape
    gh, gw = regional.shape[2:]
    out_local, out_regional = torch.zeros_like(local), torch.zeros_like(regional)
    for b in range(B):
        r = regional[b].flatten(1).t()
        r = r + attend(block.norm0(r), None)
        for i in range(gh):
            for j in range(gw):
                coords = [(y, x) for y in range(i * w, min((i + 1) * w, H)) for x in range(j * w, min((j + 1) * w, W))]
                tokens = torch.stack([r[i * gw + j]] + [local[b, :, y, x] for y, x in coords])
                bias = torch.zeros(attn.heads, len(tokens), len(tokens))
                for qi, (qy, qx) in enumerate(coords):
                    for ki, (ky, kx) in enumerate(coords):
                        bias[:, qi + 1, ki + 1] = attn.rel_pos[:, (ky - qy + w - 1) * span + (kx - qx + w - 1)]
                t = tokens + attend(block.norm1(tokens), bias)
                t = t + block.mlp(block.norm2(t))
                out_regional[b, :, i, j] = t[0]
                for n, (y, x) in enumerate(coords):
                    out_local[b, :, y, x] = t[n + 1]
    return out_local, out_regional


def test_window_mismatch_between_stem_and_block_is_an_error() -> None:
    block = R2LBlock(8, 2, 14, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0)
    with pytest.raises(RuntimeError, match="window"):
        block((torch.randn(1, 8, 56, 56), torch.randn(1, 8, 8, 8)))  # grid of a window-7 stem


def test_downsample_shares_one_module_for_both_streams() -> None:
    down = RegionViTDownsample(16, 32, shared=True)
    assert down.proj_regional is down.proj
    # LN2d (2·16) + grouped 3×3 conv (32 filters of one input channel, + bias): counted once.
    assert count_params(down) == 2 * 16 + 32 * 9 + 32
    assert count_params(RegionViTDownsample(16, 32, shared=False)) == 2 * count_params(down)
    local, regional = down((torch.randn(1, 16, 14, 14), torch.randn(1, 16, 2, 2)))
    assert local.shape == (1, 32, 7, 7) and regional.shape == (1, 32, 1, 1)
    assert down(torch.randn(1, 16, 9, 9)).shape == (1, 32, 5, 5)  # a plain map stays plain


# ---- MAC counters agree -------------------------------------------------------------------------
@pytest.mark.parametrize("img_size", [224, 200])
def test_matmul_macs_equal_meta_counter(img_size: int) -> None:
    spec = small_spec(img_size)
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)


# ---- hybrids ------------------------------------------------------------------------------------
def _hybrid(stem: dict[str, Any], blocks: list[dict[str, Any]], downsample: dict[str, Any], head: dict[str, Any]) -> ArchSpec:
    data = pyramid(stem=stem, dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], block=lambda i: blocks[i], downsample=downsample, head=head)
    data["name"] = "regionvit_hybrid_test"
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict(data)


MHSA = {"type": "mhsa", "params": {"heads": 2, "sr_ratio": 4}}
REGIONAL = {"type": "regional", "params": {"heads": 2}}


@pytest.mark.parametrize(
    "spec",
    [
        # A plain stem and an MHSA stage, then R2L stages that pool their own regional tokens.
        _hybrid({"type": "patchify", "params": {"patch_size": 4}}, [MHSA, REGIONAL, REGIONAL, REGIONAL], {"type": "regionvit"}, {"type": "regionvit"}),
        # RegionViT stem and stages, then MHSA stages and a linear head (the builder drops the regional map).
        _hybrid({"type": "regionvit"}, [REGIONAL, REGIONAL, MHSA, MHSA], {"type": "conv", "params": {"kernel": 3}}, {"type": "linear"}),
    ],
    ids=["mhsa_then_regional", "regional_then_mhsa"],
)
def test_hybrid_builds_runs_and_counts(spec: ArchSpec) -> None:
    model = archbench.build(spec)
    for size in (224, 160):
        out = model(torch.randn(1, 3, size, size))
        assert out.shape == (1, 10) and torch.isfinite(out).all()
    count = count_macs(model, 224)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), 224)


def test_regional_tokens_from_a_plain_map_are_window_means() -> None:
    block = R2LBlock(8, 2, 7, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0).eval()
    local = torch.randn(1, 8, 10, 10)
    pooled = F.avg_pool2d(local, 7, 7, ceil_mode=True)
    torch.testing.assert_close(pooled[..., 1, 1], local[..., 7:, 7:].mean((-2, -1)))  # edge window: real tokens only
    torch.testing.assert_close(block(local)[0], block((local, pooled))[0])
