"""Parameter counting as papers report it: unique parameters (shared ones once), buffers excluded.
"""
from __future__ import annotations

from torch import nn


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Unique parameters of ``model``; ``model.parameters()`` already yields a shared tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
