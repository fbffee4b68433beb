"""Representation similarity between architectures: minibatch linear CKA (Kornblith et al., 2019;
Nguyen et al., 2021) of every block of one against every block of another (Raghu et al., 2021).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from archbench._lazy import lazy_attributes

# Examples a CKA minibatch: Nguyen et al. (ICLR 2021) estimate CKA over minibatches of this size.
DEFAULT_BATCH = 256

# Resolved on first use: `archbench --help` and the parser of every command import this package's
# constants, and must not pay for torch.
_LAZY = {
    "MinibatchCKA": "archbench.similarity.cka",
    "gram": "archbench.similarity.cka",
    "linear_cka": "archbench.similarity.cka",
    "unbiased_hsic": "archbench.similarity.cka",
    "CKAResult": "archbench.similarity.compare",
    "Operand": "archbench.similarity.compare",
    "compare": "archbench.similarity.compare",
    "heatmap_png": "archbench.similarity.compare",
    "parquet_bytes": "archbench.similarity.compare",
    "resolve_operand": "archbench.similarity.compare",
    "BlockOutputs": "archbench.similarity.layers",
    "block_layers": "archbench.similarity.layers",
}

if TYPE_CHECKING:
    from archbench.similarity.cka import MinibatchCKA, gram, linear_cka, unbiased_hsic
    from archbench.similarity.compare import CKAResult, Operand, compare, heatmap_png, parquet_bytes, resolve_operand
    from archbench.similarity.layers import BlockOutputs, block_layers

__all__ = [
    "DEFAULT_BATCH",
    "BlockOutputs",
    "CKAResult",
    "MinibatchCKA",
    "Operand",
    "block_layers",
    "compare",
    "gram",
    "heatmap_png",
    "linear_cka",
    "parquet_bytes",
    "resolve_operand",
    "unbiased_hsic",
]


__getattr__ = lazy_attributes("archbench.similarity", _LAZY, globals())
