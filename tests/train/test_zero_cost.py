"""Zero-cost proxies: each score against its value worked out by hand on a two-layer network, the
model left untouched, seeded determinism, None for what is not finite, BatchNorm under synflow."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from archbench import ArchSpec
from archbench.train import TrainConfig, load_dataset
from archbench.train.zero_cost import (
    ZERO_COST_SIGNALS,
    grad_norm,
    nwot,
    snip,
    synflow,
    zero_cost_of,
    zero_cost_scores,
)

# Linear(4, 3) -> ReLU -> Linear(3, 2), mixed signs, and a batch in which some units are off.
W1 = np.array([[0.5, -0.2, 0.1, 0.3], [-0.4, 0.6, -0.1, 0.2], [0.2, 0.1, -0.5, -0.3]])
B1 = np.array([0.1, -0.2, 0.05])
W2 = np.array([[0.3, -0.7, 0.5], [-0.6, 0.2, 0.4]])
B2 = np.array([0.05, -0.1])
X = np.array([[1.0, 2.0, -1.0, 0.5], [-0.5, 1.0, 2.0, -1.0], [0.3, -0.8, 0.4, 1.2], [2.0, 0.1, -0.3, -0.7]])
Y = np.array([0, 1, 1, 0])


def two_layer(*, batchnorm: bool = False, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    first, second = nn.Linear(4, 3), nn.Linear(3, 2)
    with torch.no_grad():
        first.weight.copy_(torch.tensor(W1))
        first.bias.copy_(torch.tensor(B1))
        second.weight.copy_(torch.tensor(W2))
        second.bias.copy_(torch.tensor(B2))
    layers: list[nn.Module] = [first]
    if batchnorm:
        bn = nn.BatchNorm1d(3)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([2.0, -3.0, 0.5]))
            bn.bias.copy_(torch.tensor([1.0, -1.0, 0.2]))
        layers.append(bn)
    return nn.Sequential(*layers, act(), second)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(X, dtype=torch.float32), torch.tensor(Y)


def hand_gradients() -> tuple[np.ndarray, np.ndarray]:
    """dL/dW1 and dL/dW2 of the mean cross-entropy, backpropagated by hand."""
    z1 = X @ W1.T + B1
    h = np.maximum(z1, 0.0)
    z2 = h @ W2.T + B2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz2 = (p - np.eye(2)[Y]) / len(X)
    dw2 = dz2.T @ h
    dz1 = (dz2 @ W2) * (z1 > 0)
    dw1 = dz1.T @ X
    return dw1, dw2


def test_synflow_by_hand():
    # |W|, all-ones input: h = |W1| 1 + |b1| > 0 (every ReLU passes); R = 1ᵀ(|W2| h + |b2|).
    # The layers hold float32 weights, which synflow widens to float64 as they are.
    w1, b1, w2 = (np.float32(v).astype(np.float64) for v in (W1, B1, W2))
    a1, a2 = np.abs(w1), np.abs(w2)
    h = a1 @ np.ones(4) + np.abs(b1)
    # dR/dW2[i, j] = h[j]; dR/dW1[j, k] = sum_i |W2|[i, j] * 1.
    expected = (a2 * h[None, :]).sum() + (a1 * a2.sum(axis=0)[:, None]).sum()
    images, _ = batch()
    assert synflow(two_layer(), images) == pytest.approx(expected, rel=1e-12)  # float64 throughout


def test_snip_and_grad_norm_by_hand():
    assert (X @ W1.T + B1 <= 0).any()  # the batch switches some units off: the mask matters
    dw1, dw2 = hand_gradients()
    images, labels = batch()
    model = two_layer()
    assert snip(model, images, labels) == pytest.approx(np.abs(W1 * dw1).sum() + np.abs(W2 * dw2).sum(), rel=1e-5)
    assert grad_norm(model, images, labels) == pytest.approx(np.linalg.norm(dw1) + np.linalg.norm(dw2), rel=1e-5)


def test_nwot_by_hand():
    # Identity first layer: the ReLU's inputs are the images, so the codes are their signs.
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
    images = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    # codes 101, 110, 001; K[i, j] = units where i and j agree: 3 on the diagonal, 1, 2 and 0 off it.
    kernel = np.array([[3, 1, 2], [1, 3, 0], [2, 0, 3]])
    assert np.linalg.det(kernel) == pytest.approx(12.0)  # 3·9 − 1·3 + 2·(−6)
    assert nwot(model, images) == pytest.approx(math.log(12.0), rel=1e-12)
    # GELU's input has the same signs: the same codes, the same score.
    model[1] = nn.GELU()
    assert nwot(model, images) == pytest.approx(math.log(12.0), rel=1e-12)


def test_a_singular_kernel_or_an_overflow_is_none():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    twins = torch.tensor([[1.0, -1.0, 1.0], [1.0, -1.0, 1.0]])  # equal codes: equal rows of K
    assert nwot(model, twins) is None
    assert nwot(nn.Sequential(nn.Linear(3, 2)), twins) is None  # no activation: no codes at all
    huge = nn.Sequential(*(nn.Linear(4, 4) for _ in range(12)))
    with torch.no_grad():
        for layer in huge:
            layer.weight.fill_(1e30)  # a flow of (4e30)^12: beyond float64
    scores = zero_cost_scores(huge, *batch())
    assert scores["synflow"] is None and scores["synflow_seconds"] > 0


def test_synflow_removes_batchnorm_whatever_the_batch():
    """The references score synflow with BatchNorm bypassed: the same value as without the layer,
    for any batch (only its shape is used); the other scores do use the batch's statistics."""
    images, labels = batch()
    with_bn = two_layer(batchnorm=True)
    plain = synflow(two_layer(), images)
    assert synflow(with_bn, images) == pytest.approx(plain, rel=1e-12)
    assert synflow(with_bn, torch.randn(4, 4, generator=torch.Generator().manual_seed(1)) * 100) == pytest.approx(plain, rel=1e-12)
    assert snip(with_bn, images, labels) != pytest.approx(snip(two_layer(), images, labels))


def test_scoring_leaves_the_model_as_it_was():
    model = two_layer(batchnorm=True)
    model.train()
    model[2].eval()  # a mixture of modes, a frozen layer and a stored gradient
    model[3].weight.requires_grad_(False)
    model[0].weight.grad = torch.full_like(model[0].weight, 0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]

    scores = zero_cost_scores(model, *batch())

    assert set(scores) == {*ZERO_COST_SIGNALS, *(f"{s}_seconds" for s in ZERO_COST_SIGNALS)}
    assert all(isinstance(scores[s], float) for s in ZERO_COST_SIGNALS)
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())  # BN's running stats too
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 0.5))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "0.weight")


def test_signals_are_chosen_by_name():
    scores = zero_cost_scores(two_layer(), *batch(), signals=("nwot", "synflow"))
    assert list(scores) == ["nwot", "nwot_seconds", "synflow", "synflow_seconds"]
    with pytest.raises(ValueError, match="unknown zero-cost signal.*fisher"):
        zero_cost_scores(two_layer(), *batch(), signals=("fisher",))


def tiny_pyramid() -> ArchSpec:
    def stage(dim, down):
        return {"depth": 1, "dim": dim, "block": {"type": "convnext", "params": {"kernel": 3}}, "downsample": {"type": "conv"} if down else None}

    return ArchSpec.from_dict({
        "name": "tiny",
        "layout": "pyramid",
        "input": {"img_size": 16, "num_classes": 10},
        "stem": {"type": "overlap", "params": {"kernel": 3, "stride": 2, "norm": "batchnorm", "act": "relu"}},
        "stages": [stage(16, False), stage(32, True)],
        "head": {"type": "linear"},
    })


def test_zero_cost_of_a_proxy_is_seeded_and_restores_the_global_state():
    config = TrainConfig(dataset="digits", proxy_width_mult=0.25, proxy_depth_mult=0.34, proxy_img_size=16, batch_size=32, device="cpu", threads=1, seed=3)
    data = load_dataset("digits", img_size=16, seed=3)
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()

    first = zero_cost_of(tiny_pyramid(), data, config)
    again = zero_cost_of(tiny_pyramid(), data, config)
    other = zero_cost_of(tiny_pyramid(), data, config.for_trial(1))

    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    for name in ZERO_COST_SIGNALS:
        assert first[name] is not None and math.isfinite(first[name]) and first[name] == again[name]
        assert first[f"{name}_seconds"] > 0
    assert first["synflow"] != other["synflow"]  # another seed: other initial weights
    assert first["nwot"] != other["nwot"]  # ... and another batch
