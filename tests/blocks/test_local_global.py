"""Local-to-global attention (Li et al., arXiv 2107.04735; built from the abstract, see the module):
one path is Swin's block exactly, more paths see the whole map, any resolution, MAC cross-check."""
from __future__ import annotations

import pytest
import torch

import archbench
import archbench.space as spaces
from archbench import zoo
from archbench.blocks.local_global import LocalToGlobalBlock
from archbench.blocks.swin import SwinBlock
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import BlockContext, lookup
from archbench.spec import ArchSpec
from archbench.zoo import pyramid


def small(img_size: int = 64) -> ArchSpec:
    data = pyramid(
        stem={"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        dims=[16, 32, 64, 128],
        depths=[2, 2, 2, 2],
        block=lambda i: {"type": "local_global", "params": {"heads": 2 << i, "window_size": 4, "paths": 4 - i}},
        downsample={"type": "patch_merging"},
        img_size=img_size,
    )
    data["input"]["num_classes"] = 10
    return ArchSpec.from_dict({**data, "name": "lg_small_test"})


def block(resolution: int, block_index: int, paths: int) -> LocalToGlobalBlock:
    ctx = BlockContext(16, "pyramid", 0, block_index, 2, 0.0, (resolution, resolution))
    return lookup("block", "local_global").factory(ctx, heads=2, window_size=7, paths=paths, shift=True, mlp_ratio=4.0, qkv_bias=True)


@pytest.mark.parametrize("block_index", [0, 1])
def test_one_path_is_swin(block_index: int) -> None:
    ours = block(14, block_index, paths=1).eval()
    theirs = SwinBlock(16, 2, (7, 7), block_index == 1, 4.0, True, 0.0).eval()
    names = {"attn.tables.0": "attn.relative_position_bias_table"}
    state = theirs.state_dict()
    ours.load_state_dict({k: state[names.get(k, k)] for k in ours.state_dict()})
    x = torch.randn(2, 16, 14, 14)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)
    assert count_params(ours) == count_params(theirs)


def test_the_coarsest_path_sees_the_whole_map() -> None:
    # 56x56 with 7x7 windows: one path (unshifted) keeps corners apart; four paths (pooled by 8 to
    # one 7x7 window) let the top-left corner reach the bottom-right one within a single block.
    x = torch.randn(1, 16, 56, 56)
    y = x.clone()
    y[0, 0, 0, 0] += 1.0  # one channel: a shift of all channels would vanish in the LayerNorm
    for paths, reaches in ((1, False), (4, True)):
        model = block(56, 0, paths).eval()
        with torch.no_grad():
            changed = (model(x) - model(y))[..., -1, -1].abs().max().item()
        assert (changed > 1e-6) is reaches, (paths, changed)


@pytest.mark.parametrize("img_size", [64, 96])
def test_shapes_and_backward(img_size: int) -> None:
    # 96 px: maps 24/12/6/3, pooled maps 12/6/3 (ceil) and windows clamped to the small ones.
    torch.manual_seed(0)
    model = archbench.build(small())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_non_square_input() -> None:
    assert archbench.build(small()).eval()(torch.randn(1, 3, 80, 112)).shape == (1, 10)


@pytest.mark.parametrize("img_size", [64, 96])
def test_matmul_macs_match_independent_count(img_size: int) -> None:
    spec = small()
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.by_operator["scaled_dot_product_attention"] > 0
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)


def test_extra_paths_add_only_their_bias_tables() -> None:
    # Swin-T with 4/3/2/1 paths by stage (pool ratios up to 8, so stage 1 reaches one 7x7 window):
    # each extra path adds a 13x13 relative-bias table per head and nothing else.
    arch = zoo.get("swin_t").to_dict()
    for stage, paths in zip(arch["stages"], (4, 3, 2, 1)):
        stage["block"] = {"type": "local_global", "params": {**stage["block"]["params"], "paths": paths}}
    with torch.device("meta"):
        ours = count_params(archbench.build(ArchSpec.from_dict(arch)))
        swin = count_params(archbench.build("swin_t"))
    extra = 169 * (2 * 3 * 3 + 2 * 2 * 6 + 6 * 1 * 12)  # blocks × extra paths × heads, by stage
    assert ours - swin == extra == 19_266


def test_offered_in_hybrid_vit() -> None:
    space = spaces.load("hybrid_vit")
    assert "local_global" in space.tree.stages[0].block.labels
