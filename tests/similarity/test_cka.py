"""Minibatch linear CKA against its definition: CKA(X, X) = 1, invariance to orthogonal transforms and
isotropic scaling, the unbiased HSIC formula of Song et al. (2012), and minibatch ≈ full batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from archbench.similarity.cka import MinibatchCKA, gram, linear_cka, unbiased_hsic


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _biased_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s feature-space form ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F) on centred features."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def test_cka_of_a_representation_with_itself_is_one() -> None:
    x = _rand(100, 20)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    x, y = _rand(200, 16, seed=1), _rand(200, 24, seed=2)
    y = y + x @ _rand(16, 24, seed=3)  # related to x, so the value is far from 0 and 1
    q = torch.linalg.qr(_rand(24, 24, seed=4))[0]
    base = linear_cka(x, y)
    assert 0.2 < base < 0.95
    assert linear_cka(x, y @ q) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    # Not invariant to an arbitrary (non-orthogonal) linear map: what makes CKA a similarity of geometry.
    assert abs(linear_cka(x, y @ torch.diag(torch.linspace(0.1, 10, 24, dtype=torch.float64))) - base) > 0.01


def test_unbiased_hsic_matches_the_formula_of_song_et_al() -> None:
    x, y = _rand(7, 3, seed=5).numpy(), _rand(7, 4, seed=6).numpy()
    n = 7
    k, l = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    expected = (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))
    got = unbiased_hsic(gram(torch.from_numpy(x))[None], gram(torch.from_numpy(y))[None])
    assert got.shape == (1, 1)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_all_pairs_at_once_equal_each_pair_alone() -> None:
    xs = [_rand(32, 5, seed=s) for s in range(3)]
    ys = [_rand(32, 2, 3, seed=10 + s) for s in range(2)]  # features of any shape, flattened per example
    cka = MinibatchCKA(3, 2)
    cka.update(xs, ys)
    matrix = cka.compute()
    assert matrix.shape == (3, 2)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            assert float(matrix[i, j]) == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_minibatch_estimate_agrees_with_the_full_batch() -> None:
    x = _rand(2048, 32, seed=7)
    y = torch.tanh(0.3 * x @ _rand(32, 64, seed=8)) + 0.5 * _rand(2048, 64, seed=9)
    cka = MinibatchCKA(1, 1)
    for xb, yb in zip(x.split(256), y.split(256)):
        cka.update([xb], [yb])
    full = linear_cka(x, y)
    assert cka.batches == 8 and cka.examples == 2048
    assert float(cka.compute()[0, 0]) == pytest.approx(full, abs=0.01)  # measured: 0.6476 vs 0.6480
    assert full == pytest.approx(_biased_cka(x, y), abs=0.02)  # and the biased estimator at large n


def test_unbiased_estimate_of_independent_features_is_near_zero() -> None:
    # The point of the unbiased HSIC (Nguyen et al., 2021): the biased form reads ~0.1 here.
    x, z = _rand(1024, 32, seed=11), _rand(1024, 500, seed=12)
    assert abs(linear_cka(x, z)) < 0.01
    assert _biased_cka(x, z) > 0.05


def test_a_constant_layer_is_nan_and_tiny_batches_are_refused() -> None:
    cka = MinibatchCKA(1, 1)
    cka.update([torch.ones(8, 3)], [_rand(8, 3)])
    assert torch.isnan(cka.compute()).all()
    with pytest.raises(ValueError, match="at least 4 examples"):
        linear_cka(_rand(3, 2), _rand(3, 2))
    with pytest.raises(ValueError, match="no batch"):
        MinibatchCKA(1, 1).compute()
