"""Multiply-accumulate counting: fvcore's tracer plus handles for every op our blocks emit that
fvcore skips (fused attention, FFTs, baddbmm), and a record of what still went uncounted.

fvcore counts one fused multiply-add as one "flop", i.e. MACs, the unit papers call FLOPs.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

COUNTER_NAME = "fvcore+archbench-handles"

# Ops with no multiply-accumulates by the papers' convention (elementwise, reductions, data
# movement). They are skipped on purpose and reported as `ignored_ops`, never as uncounted.
IGNORED_BY_CONVENTION = frozenset(
    f"aten::{name}"
    for name in (
        "add add_ sub sub_ mul mul_ div div_ neg rsub pow sqrt rsqrt exp log abs clamp clamp_min clamp_max "
        "softmax log_softmax gelu relu relu_ relu6 hardtanh hardtanh_ silu silu_ sigmoid tanh hardswish "
        "hardsigmoid leaky_relu elu erf sin cos mean sum amax max min max_pool2d avg_pool2d "
        "adaptive_max_pool2d dropout feature_dropout pad constant_pad_nd reflection_pad2d roll repeat "
        "expand_as where masked_fill fill_ zero_ zeros_like ones_like full_like copy_ clone contiguous "
        "view_as_real view_as_complex real imag complex linalg_vector_norm norm topk sort gather scatter "
        "index index_select unfold fold cumsum ne eq gt lt ge le floor_divide remainder argmax "
        "upsample_nearest2d pixel_shuffle pixel_unshuffle im2col col2im lerp addcmul addcdiv "
        "channel_shuffle scatter_add sign floor ceil round reciprocal square maximum minimum "
        "logsumexp std var var_mean std_mean bitwise_not logical_not lift_fresh"
    ).split()
)


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    # QKᵀ: L·S·E per batch·head, then AV: L·S·Ev (the softmax is elementwise, uncounted).
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = math.prod(q[:-2])
    length, embed = q[-2], q[-1]
    source, value_dim = k[-2], v[-1]
    return batch * length * source * (embed + value_dim)


def _fft_macs(inputs: list[Any], outputs: list[Any]) -> int:
    # An n-point FFT costs about n·log2(n) multiply-adds per transformed line; HorNet's own counter
    # (calc_flops.py) uses elements × ceil(log2(H·W)). We follow it for the 2-D transforms.
    shape = get_shape(inputs[0])
    spatial = math.prod(shape[-2:])
    return int(math.prod(shape) * math.ceil(math.log2(max(spatial, 2))))


def _baddbmm_macs(inputs: list[Any], outputs: list[Any]) -> int:
    # baddbmm(input, batch1, batch2): batch1 (b, n, m) @ batch2 (b, m, p).
    b, n, m = get_shape(inputs[1])
    p = get_shape(inputs[2])[-1]
    return b * n * m * p


def _elementwise_count(inputs: list[Any], outputs: list[Any]) -> int:
    # Interpolation of position embeddings/biases: one MAC per output element per tap is noise;
    # fvcore counts bilinear/nearest upsampling by output size, so bicubic is counted the same way.
    return math.prod(get_shape(outputs[0]))


EXTRA_HANDLES: dict[str, Callable[[list[Any], list[Any]], int]] = {
    "aten::scaled_dot_product_attention": _sdpa_macs,
    "aten::fft_rfft2": _fft_macs,
    "aten::fft_irfft2": _fft_macs,
    "aten::fft_rfftn": _fft_macs,
    "aten::fft_irfftn": _fft_macs,
    "aten::baddbmm": _baddbmm_macs,
    "aten::upsample_bicubic2d": _elementwise_count,
}

# The ops that carry matrix products; the cross-check counter (FlopCounterMode) sees exactly these.
# Names as fvcore's ``by_operator`` reports them (``aten::`` dropped, convolutions as "conv").
MATMUL_OPS = frozenset(
    {"addmm", "mm", "bmm", "matmul", "linear", "einsum", "conv", "scaled_dot_product_attention", "baddbmm"}
)


@dataclass(frozen=True)
class MacCount:
    """Result of one count: total MACs, per-op and per-module breakdowns, and what was skipped."""

    total: int
    by_operator: dict[str, int]
    by_module: dict[str, int]
    uncounted_ops: dict[str, int]
    ignored_ops: dict[str, int] = field(default_factory=dict)
    counter: str = COUNTER_NAME

    @property
    def matmul_macs(self) -> int:
        return sum(v for k, v in self.by_operator.items() if k in MATMUL_OPS)


def count_macs(model: nn.Module, img_size: int | tuple[int, int], *, batch_size: int = 1, in_chans: int = 3) -> MacCount:
    """Count the MACs of one forward pass of ``model`` on a (batch, in_chans, H, W) input.

    Example:
        >>> count_macs(archbench.build("deit_s"), 224).total
        4608338304
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    return count_macs_on(model, (torch.zeros(batch_size, in_chans, h, w),))


def count_macs_on(model: nn.Module, inputs: tuple[Any, ...]) -> MacCount:
    """Count the MACs of ``model(*inputs)`` (tensors, or tuples of tensors), in eval mode: the
    audited count of one layer of a network as much as of a whole one."""
    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(model, inputs)
        analysis.set_op_handle(**EXTRA_HANDLES)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        logger = logging.getLogger("fvcore")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with torch.no_grad():
                total = int(analysis.total())
        finally:
            logger.setLevel(level)
        skipped = Counter(dict(analysis.unsupported_ops()))
        by_operator = {k: int(v) for k, v in analysis.by_operator().items() if v}
        by_module = {k: int(v) for k, v in analysis.by_module().items()}
    finally:
        model.train(was_training)
    uncounted = {op: n for op, n in sorted(skipped.items()) if op not in IGNORED_BY_CONVENTION}
    ignored = {op: n for op, n in sorted(skipped.items()) if op in IGNORED_BY_CONVENTION}
    return MacCount(total=total, by_operator=by_operator, by_module=by_module, uncounted_ops=uncounted, ignored_ops=ignored)


def count_macs_meta(build_model: Callable[[], nn.Module], img_size: int | tuple[int, int], *, batch_size: int = 1, in_chans: int = 3) -> int:
    """Independent count: torch's FlopCounterMode on meta tensors (no weights allocated), in MACs.

    FlopCounterMode reports 2 FLOPs per MAC and counts only matrix products and convolutions, so
    compare it with :attr:`MacCount.matmul_macs`. It must run on meta tensors: on CPU tensors the
    fused attention kernel registers no formula and counts zero.
    """
    from torch.utils.flop_counter import FlopCounterMode

    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    with torch.device("meta"):
        model = build_model().eval()
        inputs = torch.empty(batch_size, in_chans, h, w)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(inputs)
    return counter.get_total_flops() // 2



def meta_macs_of(run: Callable[[], Any]) -> int:
    """MACs of ``run()``, a forward pass on meta tensors: FlopCounterMode's formulas and rules, with
    repeated ops' meta results remembered (:mod:`archbench.measure.meta_counter`), so the per-layer
    cache measures a layer ~3x faster than :func:`count_macs_meta`, its independent check."""
    from archbench.measure.meta_counter import MetaMacCounter

    counter = MetaMacCounter()
    with counter, torch.no_grad():
        run()
    return counter.flops // 2
