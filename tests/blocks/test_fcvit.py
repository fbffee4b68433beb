"""FCViT: the block (global context + large-kernel token mixer), shapes at several resolutions, the
MAC cross-check, and the four presets against the release's parameter counts (published figures,
their documented deviation and our pinned MACs: tests/zoo/test_presets.py)."""
from __future__ import annotations

import pytest
import torch

import archbench
from archbench.blocks.fcvit import GlobalContext
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params_meta
from archbench.registry import SpecError
from archbench.spec import ArchSpec
from archbench.zoo import get, published
from archbench.zoo.fcvit import fcvit

# Parameters of ma-xu/FCViT@77e5a9d15d's fcvit_* as released (11×11 mixing kernels), counted by
# instantiating its models/fcvit.py; our blocks load its BasicBlock weights one to one.
RELEASE_PARAMS = {"fcvit_tiny": 4_784_752, "fcvit_b12": 14_701_832, "fcvit_b24": 26_960_232, "fcvit_b48": 51_477_032}


def small() -> ArchSpec:
    data = fcvit([16, 32, 48, 64], [1, 1, 2, 1])
    return ArchSpec.from_dict({**data, "name": "fcvit_small_test", "input": {"img_size": 64, "num_classes": 10}})


def meta_params(name: str) -> int:
    return count_params_meta(lambda: archbench.build(get(name)))


@pytest.mark.parametrize("name", list(RELEASE_PARAMS))
def test_preset_params_match_release(name: str) -> None:
    assert meta_params(name) == RELEASE_PARAMS[name]
    assert published(name).gmacs is None
    assert "not reachable" in published(name).deviation  # `reproduce` reports a documented deviation


def test_matmul_macs_match_independent_count() -> None:
    arch = small()
    macs = count_macs(archbench.build(arch), 64)
    assert macs.uncounted_ops == {}
    assert macs.matmul_macs == count_macs_meta(lambda: archbench.build(arch), 64)


@pytest.mark.parametrize("img_size", [64, 96, 80])
def test_shapes_and_backward(img_size: int) -> None:
    torch.manual_seed(0)
    model = archbench.build(small())
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_preset_runs_at_another_resolution() -> None:
    model = archbench.build(get("fcvit_tiny"), num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 10)


def test_global_context_is_query_irrelevant() -> None:
    # Every position gets the same context vector per group, weighted by one scalar (its similarity
    # to the group's mean): each group's (d, N) output is rank one.
    torch.manual_seed(0)
    gc = GlobalContext(dim=32, groups=8, reduction=8, compete=True)
    out = gc(torch.randn(2, 32, 5, 6)).reshape(2, 8, 4, 30)
    ranks = torch.linalg.matrix_rank(out)
    assert ranks.shape == (2, 8) and torch.all(ranks == 1)


def test_block_structure_and_init() -> None:
    block = archbench.build(small()).stages[0].blocks[0]
    assert [dw.kernel_size for dw in block.token_mixer.dws] == [(11, 11), (11, 11)]
    assert block.token_mixer.fcs[0][0].out_channels == 16  # max(16 / 8, 16)
    assert block.channel_mixer.fc1.out_channels == 16 * 8
    assert torch.all(block.layer_scale_1 == 1e-5) and torch.all(block.layer_scale_2 == 1e-5)
    assert isinstance(block.norm1, torch.nn.GroupNorm) and block.norm1.num_groups == 1


def test_groups_must_divide_width() -> None:
    data = fcvit([20, 32, 48, 64], [1, 1, 1, 1])
    with pytest.raises(SpecError, match="not divisible by groups"):
        ArchSpec.from_dict({**data, "name": "bad"})
