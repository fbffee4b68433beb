"""Quantities as papers write them: ``6G`` MACs, ``25M`` parameters (decimal SI prefixes).

One parser and one formatter for space files, CLI options and reports.
"""
from __future__ import annotations

import math
import re
from typing import Any

from archbench.registry import SpecError

__all__ = ["format_quantity", "parse_quantity"]

_SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_QUANTITY = re.compile(r"^\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([kKMGT]?)\s*$")
_PREFIXES = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def parse_quantity(value: Any, path: str = "", key: str = "", *, positive: bool = True) -> float:
    """A positive number from ``6G``, ``30M``, ``1.5k``, ``6.0e9`` or a plain int/float (any finite
    number, zero and negatives included, with ``positive=False``: hypervolume bounds).

    Args:
        value: the text or number as written.
        path: where it was written (``constraints.max_macs``, ``--max-macs``), for the error.
        key: the bound's name; ``max_latency_ms`` is milliseconds and takes no SI suffix.
        positive: refuse zero and negative numbers.

    Raises:
        SpecError: naming ``path``, for anything but a finite positive number.

    Example:
        >>> parse_quantity("6G"), parse_quantity("25M"), parse_quantity(1.5e3)
        (6000000000.0, 25000000.0, 1500.0)
    """
    if isinstance(value, bool):
        raise SpecError(path, f"expected a number such as 6G or 6.0e9, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and (match := _QUANTITY.match(value)) and not (positive and value.strip()[0] in "+-"):
        if key == "max_latency_ms" and match.group(2):
            raise SpecError(path, f"latency is in milliseconds: write a plain number, got {value!r}")
        number = float(match.group(1)) * _SUFFIXES[match.group(2)]
    else:
        raise SpecError(path, f"expected a number such as 6G, 30M or 6.0e9, got {value!r}")
    if not math.isfinite(number):
        raise SpecError(path, f"expected a finite number, got {value!r}")
    if positive and number <= 0:
        raise SpecError(path, f"expected a positive number, got {value!r}")
    return number


def format_quantity(value: float) -> str:
    """Three significant digits and a decimal prefix, as papers print MACs and parameters.

    Example:
        >>> format_quantity(6.02e9), format_quantity(22_050_664), format_quantity(12)
        ('6.02 G', '22.1 M', '12 ')
    """
    for suffix, scale in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.3g} "
