"""The layers a representation comparison reads: the output of every block of a built architecture
(as Raghu et al., NeurIPS 2021, compare ViT and ResNet block by block), captured by forward hooks.
"""
from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import torch
from torch import nn

# Blocks sit at ``blocks.N`` in an isotropic trunk and ``stages.S.blocks.N`` in a pyramid
# (archbench.builder); anchored, so a block's own inner sub-blocks are not counted twice.
BLOCK_PATH = re.compile(r"^(stages\.\d+\.)?blocks\.\d+$")


def block_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every block of a model built by archbench, in forward order.

    Example:
        >>> import archbench
        >>> with torch.device("meta"):  # names only: no weights needed
        ...     model = archbench.build("convnext_t")
        >>> [name for name, _ in block_layers(model)][:4]
        ['stages.0.blocks.0', 'stages.0.blocks.1', 'stages.0.blocks.2', 'stages.1.blocks.0']
    """
    layers = [(name, module) for name, module in model.named_modules() if BLOCK_PATH.match(name)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no blocks at blocks.N or stages.S.blocks.N (not built by archbench.build?)")
    return layers


def short_name(name: str) -> str:
    """``stages.2.blocks.4`` -> ``s2.b4``, ``blocks.7`` -> ``b7``: axis labels of a heatmap."""
    return name.replace("stages.", "s").replace("blocks.", "b")


class BlockOutputs:
    """Context manager holding, after each forward, every block's output (a (local, regional) pair
    keeps its local map) in block order.

    Example:
        >>> import archbench
        >>> model = archbench.build("deit_ti", img_size=32, num_classes=10).eval()
        >>> with BlockOutputs(model) as taps, torch.no_grad():
        ...     _ = model(torch.randn(2, 3, 32, 32))
        >>> len(taps.outputs), tuple(taps.outputs[0].shape)
        (12, (2, 5, 192))
    """

    def __init__(self, model: nn.Module) -> None:
        self.names = [name for name, _ in block_layers(model)]
        self._modules = [module for _, module in block_layers(model)]
        self._handles: list[Any] = []
        self._outputs: dict[int, torch.Tensor] = {}

    @property
    def outputs(self) -> list[torch.Tensor]:
        return [self._outputs[i] for i in range(len(self.names))]

    def _hook(self, index: int) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            self._outputs[index] = output[0] if isinstance(output, tuple) else output

        return hook

    def __enter__(self) -> BlockOutputs:
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self._modules)]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


__all__ = ["BLOCK_PATH", "BlockOutputs", "block_layers", "short_name"]
