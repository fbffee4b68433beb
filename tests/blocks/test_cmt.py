"""CMT: the block, its shared relative bias, the conv head, and CMT-S against the release's count
(published figures: tests/zoo/test_presets.py)."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.blocks.cmt import CMTBlock, RelativePositionBias
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params_meta
from archbench.spec import ArchSpec
from archbench.zoo import get
from archbench.zoo.cmt import cmt


def small(share_bias: bool = True) -> ArchSpec:
    data = cmt([16, 32, 48, 64], [2, 1, 2, 1], 8, 2.0, img_size=64)
    for stage in data["stages"]:
        stage["block"]["params"]["share_bias"] = share_bias
    return ArchSpec.from_dict({**data, "name": "cmt_small_test", "input": {"img_size": 64, "num_classes": 10}})


def meta_params(name: str) -> int:
    return count_params_meta(lambda: archbench.build(get(name)))


def test_cmt_s_params_follow_the_release() -> None:
    # The release's CMT-S: 23,309,056 in blocks + 27,968 stem + 690,816 patch embeddings + 1,940,200
    # head + 288,120 in the four per-stage relative biases (56²·7², 2·28²·7², 4·14²·7², 8·7²·7²).
    # mindcv counts 26.09M (its bias is a constant buffer; MindSpore counts BN statistics).
    assert meta_params("cmt_s") == 26_256_160


def test_relative_bias_is_shared_within_a_stage() -> None:
    model = archbench.build(small())
    biases = {id(m) for m in model.modules() if isinstance(m, RelativePositionBias)}
    assert len(biases) == 4  # one per stage, as the release's relative_pos_a..d
    per_block = archbench.build(small(share_bias=False))
    assert len({id(m) for m in per_block.modules() if isinstance(m, RelativePositionBias)}) == 6
    # stage 1 at 64 px: 16×16 queries, 2×2 keys (sr 8), one head
    first = model.stages[0].blocks[0].attn.relative_bias
    assert first is model.stages[0].blocks[1].attn.relative_bias
    assert tuple(first.bias.shape) == (1, 256, 4)


def test_relative_bias_resizes() -> None:
    bias = RelativePositionBias(heads=2, grid=(8, 8), sr_ratio=4)
    assert bias((8, 8), (2, 2)) is bias.bias
    assert tuple(bias((12, 6), (3, 1)).shape) == (2, 72, 3)


@pytest.mark.parametrize("img_size", [64, (96, 64)])
def test_shapes_and_backward(img_size: int | tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = archbench.build(small())
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert count_macs(model, img_size).uncounted_ops == {}


def test_block_keeps_shape() -> None:
    bias = RelativePositionBias(2, (8, 8), 2)
    block = CMTBlock(32, 2, 3.6, True, 2, bias, 0.0)
    assert block.ffn.expand[0].out_channels == 115  # int(32 · 3.6), as the release
    assert block(torch.randn(1, 32, 8, 8)).shape == (1, 32, 8, 8)


def test_matmul_macs_match_independent_count() -> None:
    arch = small()
    assert count_macs(archbench.build(arch), 64).matmul_macs == count_macs_meta(lambda: archbench.build(arch), 64)
