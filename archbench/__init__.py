"""archbench: architecture search and efficiency benchmarks for hybrid CNN/ViT backbones.

Public API: ``load_arch``, ``build``, ``ArchSpec``; ``archbench.zoo``, ``archbench.space``,
``archbench.measure`` for presets, search spaces and measurement.
"""
from __future__ import annotations

from archbench.build import build, load_arch
from archbench.registry import SpecError
from archbench.spec import ArchSpec, InputSpec, LayerSpec, StageSpec, TokenSpec

__version__ = "0.1.0"
__all__ = ["ArchSpec", "InputSpec", "LayerSpec", "SpecError", "StageSpec", "TokenSpec", "build", "load_arch", "__version__"]
