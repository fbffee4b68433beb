"""Representation similarity between architectures: minibatch linear CKA (Kornblith et al., 2019;
Nguyen et al., 2021) of every block of one against every block of another (Raghu et al., 2021).
"""
from __future__ import annotations

from archbench.similarity.cka import MinibatchCKA, gram, linear_cka, unbiased_hsic
from archbench.similarity.compare import CKAResult, Operand, compare, heatmap_png, parquet_bytes, resolve_operand
from archbench.similarity.layers import BlockOutputs, block_layers

__all__ = [
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
