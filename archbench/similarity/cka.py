"""Linear CKA (Kornblith et al., ICML 2019) with the minibatch estimator of Nguyen et al. (ICLR 2021):
unbiased HSIC (Song et al., JMLR 2012) averaged over batches, so memory is bounded by the batch.

Raghu et al. (NeurIPS 2021) compare ViTs and CNNs layer by layer with exactly this estimator.
"""
from __future__ import annotations

import torch

MIN_BATCH = 4  # the unbiased estimator divides by n (n - 3)


def gram(features: torch.Tensor) -> torch.Tensor:
    """The linear kernel ``X Xᵀ`` of ``features`` (n, ...) flattened per example, in float64."""
    x = features.reshape(features.shape[0], -1).double()
    return x @ x.T


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC of every pair of kernels: ``k`` (a, n, n) × ``l`` (b, n, n) -> (a, b).

    With K̃, L̃ the kernels with zeroed diagonals (Song et al., 2012, eq. 5):
    ``[tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3))``.
    The estimator needs no centring of the features: it is built into the formula.

    Example:
        >>> x = torch.randn(8, 3, dtype=torch.float64)
        >>> h = unbiased_hsic(gram(x)[None], gram(2 * x)[None])
        >>> torch.allclose(h, 4 * unbiased_hsic(gram(x)[None], gram(x)[None]))
        True
    """
    n = k.shape[-1]
    if n < MIN_BATCH:
        raise ValueError(f"unbiased HSIC needs at least {MIN_BATCH} examples a batch, got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=k.device)
    k = k.masked_fill(eye, 0.0)
    l = l.masked_fill(eye, 0.0)
    trace = k.reshape(k.shape[0], -1) @ l.reshape(l.shape[0], -1).T  # tr(K̃L̃) = Σ K̃∘L̃ (symmetric)
    sums = torch.outer(k.sum((1, 2)), l.sum((1, 2))) / ((n - 1) * (n - 2))
    rows = k.sum(2) @ l.sum(2).T  # 1ᵀK̃L̃1 = (K̃1)·(L̃1)
    return (trace + sums - 2.0 / (n - 2) * rows) / (n * (n - 3))


class MinibatchCKA:
    """Linear CKA of every layer of A against every layer of B, accumulated batch by batch:
    ``CKA = mean HSIC(K, L) / sqrt(mean HSIC(K, K) · mean HSIC(L, L))`` (Nguyen et al., 2021, eq. 3).

    Example:
        >>> x = torch.randn(64, 10)
        >>> cka = MinibatchCKA(1, 2)
        >>> for batch in x.split(16):
        ...     cka.update([batch], [batch, batch @ torch.linalg.qr(torch.randn(10, 10))[0]])
        >>> [round(v, 6) for v in cka.compute()[0].tolist()]
        [1.0, 1.0]

    Args:
        layers_a: how many representations A gives each batch.
        layers_b: how many representations B gives each batch.
    """

    def __init__(self, layers_a: int, layers_b: int) -> None:
        self.xy = torch.zeros(layers_a, layers_b, dtype=torch.float64)
        self.xx = torch.zeros(layers_a, dtype=torch.float64)
        self.yy = torch.zeros(layers_b, dtype=torch.float64)
        self.batches = 0
        self.examples = 0

    def update(self, features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> None:
        """Add one batch: each layer's features (n, ...) for the same n inputs, A's then B's."""
        k = torch.stack([gram(f) for f in features_a])
        l = torch.stack([gram(f) for f in features_b])
        self.xy += unbiased_hsic(k, l).cpu()
        self.xx += torch.diagonal(unbiased_hsic(k, k)).cpu()
        self.yy += torch.diagonal(unbiased_hsic(l, l)).cpu()
        self.batches += 1
        self.examples += int(k.shape[-1])

    def compute(self) -> torch.Tensor:
        """The (layers_a, layers_b) CKA matrix; NaN for a layer whose features carry no signal."""
        if self.batches == 0:
            raise ValueError("no batch was added")
        # The batch count cancels in the ratio; a constant layer has HSIC 0 (or a rounding-level negative).
        denom = torch.sqrt(torch.outer(self.xx, self.yy).clamp(min=0.0))
        return torch.where(denom > 0, self.xy / denom, torch.full_like(denom, float("nan")))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Full-batch linear CKA of two representations of the same n examples (unbiased HSIC)."""
    cka = MinibatchCKA(1, 1)
    cka.update([x], [y])
    return float(cka.compute()[0, 0])


__all__ = ["MIN_BATCH", "MinibatchCKA", "gram", "linear_cka", "unbiased_hsic"]
