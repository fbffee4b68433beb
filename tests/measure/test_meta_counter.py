"""The memoising meta counter counts what torch's FlopCounterMode counts, and a remembered result is
the result torch's meta kernel gives (shapes, strides, dtypes); views and in-place ops always run."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archbench import space, zoo
from archbench.builder import build
from archbench.measure import meta_counter
from archbench.measure.cost import _skip_meta_init_mode
from archbench.measure.meta_counter import MetaMacCounter

aten = torch.ops.aten


def _both(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    stock = FlopCounterMode(display=False)
    with stock, torch.no_grad():
        model(x)
    ours = MetaMacCounter()
    with ours, torch.no_grad():
        model(x)
    return stock.get_total_flops(), ours.flops


@pytest.mark.parametrize("name", ["deit_ti", "swin_t", "cmt_ti", "regionvit_ti", "hornet_t_gf", "mvitv2_t"])
def test_it_counts_what_flopcountermode_counts(name: str):
    arch = zoo.get(name).with_input(img_size=160)
    with _skip_meta_init_mode()(), torch.device("meta"):
        model, x = build(arch).eval(), torch.empty(1, 3, 160, 160)
    stock, ours = _both(model, x)
    assert ours == stock and stock > 10**8
    assert _both(model, x) == (stock, stock)  # and again, from the memo


def test_it_counts_what_flopcountermode_counts_on_samples_of_every_space():
    for name in space.names():
        sp = space.load(name)
        for seed in range(3):
            arch = sp.sample(seed)
            with _skip_meta_init_mode()(), torch.device("meta"):
                model, x = build(arch).eval(), torch.empty(1, 3, arch.input.img_size, arch.input.img_size)
            stock, ours = _both(model, x)
            assert ours == stock, (name, seed)


def test_a_remembered_result_has_the_meta_kernels_shape_strides_and_dtype():
    x = torch.empty(2, 5, 7, 3, device="meta").permute(0, 3, 1, 2)  # not contiguous: strides matter
    weight, bias = torch.empty(2, device="meta"), torch.empty(2, device="meta")
    direct = aten.native_layer_norm.default(x[..., :2], [2], weight, bias, 1e-5)
    for _ in range(2):  # a miss, then a hit
        with MetaMacCounter():
            got = aten.native_layer_norm.default(x[..., :2], [2], weight, bias, 1e-5)
        assert [(o.shape, o.stride(), o.dtype) for o in got] == [(o.shape, o.stride(), o.dtype) for o in direct]
    assert meta_counter.memo_info()["hits"] >= 1
    half = torch.empty(4, 6, device="meta", dtype=torch.bfloat16)
    with MetaMacCounter():
        assert aten.gelu.default(half).dtype == torch.bfloat16  # the dtype is part of the key


def test_views_and_in_place_ops_run_and_alias():
    x = torch.empty(4, 6, device="meta")
    with MetaMacCounter():
        view = x.view(6, 4)
        same = x.add_(1.0)
    assert view.shape == (6, 4) and view._base is x
    assert same is x
    assert meta_counter._plan(aten.view.default) == meta_counter._RUN
    assert meta_counter._plan(aten.add_.Tensor) == meta_counter._RUN
    assert meta_counter._plan(aten.mm.default) == meta_counter._COUNT
