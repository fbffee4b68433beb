"""Parameter counting as papers report it: unique parameters (shared ones once), buffers excluded.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Unique parameters of ``model``; ``model.parameters()`` already yields a shared tensor once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_params_meta(build_model: Callable[[], nn.Module]) -> int:
    """Unique parameters of the model ``build_model`` makes, built on the meta device: no memory is
    allocated, so the largest presets count in milliseconds (the twin of ``count_macs_meta``)."""
    with torch.device("meta"):
        return count_params(build_model())
