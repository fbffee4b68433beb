"""The zoo: published architectures as ArchSpecs, with their published numbers stored beside them.

A zoo preset is built, measured and reported by the same code as a searched architecture; one
module per paper family registers its presets (``zoo/swin.py`` …) at import time.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from archbench.spec import ArchSpec


@dataclass(frozen=True)
class Published:
    """A paper's figures as printed (strings keep their significant digits for tolerance rules).

    Args:
        params_m: parameters in millions as published, e.g. "22.05" or "25"; None if not published.
        gmacs: multiply-accumulates in G ("FLOPs" in most papers), as published; None if n/f.
        source: where the figures come from (repository path, paper table, timm CSV).
        top1: ImageNet-1k top-1 as published, for reference only.
        note: why a figure is ambiguous or what convention it follows.
        deviation: set only when the released code itself cannot reproduce a figure (checked by
            hand, pinned by a test): `reproduce` then reports the row as a documented deviation
            rather than a failure, and prints this reason under the table.
    """

    params_m: str | None
    gmacs: str | None
    source: str
    top1: str | None = None
    note: str = ""
    deviation: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    make: Callable[[], dict[str, Any]]
    published: Published
    timm_name: str | None = None
    family: str = ""


_PRESETS: dict[str, Preset] = {}


def register_preset(
    name: str, make: Callable[[], dict[str, Any]], published: Published, *, timm_name: str | None = None, family: str = ""
) -> None:
    """Add a preset: ``make`` returns the architecture as a plain dict (ArchSpec.from_dict input)."""
    if name in _PRESETS:
        raise ValueError(f"zoo preset '{name}' is registered twice")
    _PRESETS[name] = Preset(name, make, published, timm_name, family)


def _load() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{__name__}.{module}")


def names() -> list[str]:
    """Every preset name, in registration order (families sorted by module name)."""
    _ensure()
    return list(_PRESETS)


def preset(name: str) -> Preset:
    _ensure()
    if name not in _PRESETS:
        raise KeyError(f"unknown zoo preset '{name}' ({suggest(name)})")
    return _PRESETS[name]


@lru_cache(maxsize=None)
def get(name: str) -> ArchSpec:
    """The preset ``name`` as a validated ArchSpec."""
    entry = preset(name)
    data = entry.make()
    data.setdefault("name", name)
    return ArchSpec.from_dict(data, source=f"zoo:{name}")


def published(name: str) -> Published:
    return preset(name).published


def suggest(name: str) -> str:
    _ensure()
    match = difflib.get_close_matches(name, list(_PRESETS), n=1)
    return f"did you mean '{match[0]}'?" if match else "see `archbench zoo`"


_loaded = False


def _ensure() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        _load()


def pyramid(
    *,
    stem: dict[str, Any],
    dims: list[int],
    depths: list[int],
    block: Callable[[int], dict[str, Any]],
    downsample: dict[str, Any],
    head: dict[str, Any] | None = None,
    img_size: int = 224,
    drop_path_rate: float = 0.0,
) -> dict[str, Any]:
    """A four-stage pyramid as a spec dict; ``block(stage_index)`` gives each stage's block spec."""
    return {
        "layout": "pyramid",
        "input": {"img_size": img_size, "in_chans": 3, "num_classes": 1000},
        "stem": stem,
        "stages": [
            {"depth": d, "dim": c, "block": block(i), "downsample": downsample if i else None}
            for i, (d, c) in enumerate(zip(depths, dims))
        ],
        "head": head or {"type": "linear"},
        "drop_path_rate": drop_path_rate,
    }
