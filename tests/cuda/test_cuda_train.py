"""Proxy training on CUDA: the forward runs under bf16 autocast (weights stay float32) and models
with 2-D convolutions train in channels_last."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import archbench
from archbench.train import train_proxy

from cuda_helpers import tiny_pyramid

pytestmark = pytest.mark.cuda

FAST = dict(epochs=1, batch_size=32, lr=3e-3, warmup_epochs=0.2, seed=0, device="cuda")


def _model() -> nn.Module:
    return archbench.build(tiny_pyramid(), img_size=16, num_classes=10)


def test_training_step_runs_under_bf16_autocast(digits):
    model = _model()
    seen: list[tuple[bool, torch.dtype]] = []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears, "the tiny pyramid has Linear layers (ConvNeXt MLP, head)"
    handles = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod.training, out.dtype))) for m in linears]
    try:
        result = train_proxy(model, digits, **FAST)
    finally:
        for h in handles:
            h.remove()
    train_dtypes = {dtype for training, dtype in seen if training}
    eval_dtypes = {dtype for training, dtype in seen if not training}
    assert train_dtypes == {torch.bfloat16}, train_dtypes
    assert eval_dtypes == {torch.bfloat16}, eval_dtypes  # evaluation shares the autocast
    # Autocast keeps float32 master weights (no GradScaler needed with bf16) and the loss finite.
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert math.isfinite(result.val_loss) and result.val_acc > 0.2  # chance is 0.1
    assert result.device.startswith("cuda:") and result.peak_memory_mb > 0


def _conv_input_formats(model: nn.Module, digits, **kwargs) -> list[bool]:
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))
    formats: list[bool] = []

    def hook(mod: nn.Module, inputs: tuple, _out: torch.Tensor) -> None:
        x = inputs[0]
        formats.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
                       and mod.weight.is_contiguous(memory_format=torch.channels_last))

    handle = conv.register_forward_hook(hook)
    try:
        train_proxy(model, digits, **{**FAST, **kwargs})
    finally:
        handle.remove()
    return formats


def test_conv_models_train_in_channels_last(digits):
    formats = _conv_input_formats(_model(), digits)
    assert formats and all(formats), "the stem conv should see NHWC inputs and weights on CUDA"
    off = _conv_input_formats(_model(), digits, channels_last=False)
    assert off and not any(off), "channels_last=False keeps NCHW"


def test_zero_cost_scores_on_cuda_match_the_cpu(digits):
    """The same seed gives the same initial weights and batch on either device: the scores agree
    (synflow in float64 to ~1e-9; the rest within float32 and cuDNN's TF32 convolutions' rounding),
    and every signal runs there."""
    from dataclasses import replace

    from archbench.train import TrainConfig
    from archbench.train.zero_cost import ZERO_COST_SIGNALS, zero_cost_of

    config = TrainConfig(dataset="digits", proxy_width_mult=0.25, proxy_depth_mult=0.34, proxy_img_size=16, batch_size=32, seed=0, device="cpu", threads=1)
    cpu = zero_cost_of(tiny_pyramid(), digits, config)
    gpu = zero_cost_of(tiny_pyramid(), digits, replace(config, device="cuda"))
    assert gpu["synflow"] == pytest.approx(cpu["synflow"], rel=1e-9)
    for name in ZERO_COST_SIGNALS:
        assert gpu[name] is not None and gpu[name] == pytest.approx(cpu[name], rel=1e-2)
        assert gpu[f"{name}_seconds"] > 0
