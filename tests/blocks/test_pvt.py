"""PVT v1: positional patch embeddings on the pyramid "mhsa" block, and PVT-Tiny against the
release's count (published figures: tests/zoo/test_presets.py)."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.blocks.pvt import PositionalPatchEmbed
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params_meta
from archbench.spec import ArchSpec
from archbench.zoo import get


def small() -> ArchSpec:
    block = lambda heads, sr: {"type": "mhsa", "params": {"heads": heads, "mlp_ratio": 2.0, "sr_ratio": sr}}  # noqa: E731
    return ArchSpec.from_dict(
        {
            "name": "pvt_small_test",
            "layout": "pyramid",
            "input": {"img_size": 64, "num_classes": 10},
            "stem": {"type": "pvt", "params": {"patch_size": 4, "grid": 16}},
            "stages": [
                {"depth": 1, "dim": 16, "block": block(1, 8)},
                {"depth": 1, "dim": 32, "block": block(2, 4), "downsample": {"type": "pvt", "params": {"grid": 8}}},
                {"depth": 1, "dim": 48, "block": block(3, 2), "downsample": {"type": "pvt", "params": {"grid": 4}}},
                {"depth": 1, "dim": 64, "block": block(4, 1), "downsample": {"type": "pvt", "params": {"grid": 2}}},
            ],
            "head": {"type": "linear", "params": {"norm_eps": 1e-6}},
        }
    )


def meta_params(name: str) -> int:
    return count_params_meta(lambda: archbench.build(get(name)))


def test_preset_params_equal_release_less_class_token() -> None:
    # whai362/PVT pvt_tiny counts 13,229,288; its stage-4 class token and that token's position
    # embedding slot (2 × 512) are the only parameters the pooled preset leaves out.
    assert meta_params("pvt_ti") == 13_229_288 - 2 * 512


def test_position_embeddings_per_stage() -> None:
    with torch.device("meta"):
        model = archbench.build(get("pvt_s"))
    embeds = [m for m in model.modules() if isinstance(m, PositionalPatchEmbed)]
    # The release's pos_embed1..4 at 224: 56², 28², 14², 7² positions (stage 4's class slot aside).
    assert [tuple(e.pos_embed.shape) for e in embeds] == [(1, 64, 56, 56), (1, 128, 28, 28), (1, 320, 14, 14), (1, 512, 7, 7)]
    assert [e.proj.kernel_size for e in embeds] == [(4, 4), (2, 2), (2, 2), (2, 2)]


@pytest.mark.parametrize("img_size", [64, (96, 64)])
def test_shapes_and_backward(img_size: int | tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = archbench.build(small())
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert count_macs(model, img_size).uncounted_ops == {}


def test_matmul_macs_match_independent_count() -> None:
    arch = small()
    assert count_macs(archbench.build(arch), 64).matmul_macs == count_macs_meta(lambda: archbench.build(arch), 64)
