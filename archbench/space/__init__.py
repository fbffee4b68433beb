"""The search-space language: a YAML file (or a zoo preset, a space of size one) becomes a Space
that samples valid ArchSpecs from a seed or an Optuna trial, under budget constraints.

Example:
    >>> space = archbench.space.load("tiny_cpu")
    >>> arch = space.sample(seed=0)
    >>> space.contains(arch)
    True

The language is documented in ``docs/space-language.md``.
"""
from __future__ import annotations

from archbench.quantity import format_quantity as fmt_quantity
from archbench.space._constraints import ESTIMATE_METHOD, Constraints
from archbench.space._load import load, names, shipped_dir
from archbench.space._schema import Target
from archbench.space._space import Space, SpaceInfeasible, SpaceRanges
from archbench.space._values import InvalidSample

__all__ = [
    "ESTIMATE_METHOD", "Constraints", "Estimate", "fmt_quantity", "InvalidSample", "Space", "SpaceInfeasible", "SpaceRanges", "Target",
    "load", "names", "shipped_dir",
]


def __getattr__(name: str) -> object:
    # `Estimate` is the old name of archbench.measure.Cost; resolved lazily (it imports torch).
    if name == "Estimate":
        from archbench.measure.cost import Cost

        return Cost
    raise AttributeError(f"module 'archbench.space' has no attribute '{name}'")
