"""archbench: architecture search and efficiency benchmarks for hybrid CNN/ViT backbones.

Public API: ``load_arch``, ``build``, ``ArchSpec``; ``archbench.zoo``, ``archbench.space``,
``archbench.measure`` for presets, search spaces and measurement.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from archbench._lazy import lazy_attributes

__version__ = "0.1.0"

# Resolved on first use, so `archbench --help` and `import archbench.cli` do not pay for torch.
_LAZY = {
    "build": "archbench.builder",
    "load_arch": "archbench.builder",
    "ArchSpec": "archbench.spec",
    "InputSpec": "archbench.spec",
    "LayerSpec": "archbench.spec",
    "StageSpec": "archbench.spec",
    "TokenSpec": "archbench.spec",
    "SpecError": "archbench.registry",
    "UserError": "archbench.errors",
}

if TYPE_CHECKING:
    from archbench.builder import build, load_arch
    from archbench.errors import UserError
    from archbench.registry import SpecError
    from archbench.spec import ArchSpec, InputSpec, LayerSpec, StageSpec, TokenSpec

__all__ = [*_LAZY, "__version__"]


__getattr__ = lazy_attributes("archbench", _LAZY, globals())
