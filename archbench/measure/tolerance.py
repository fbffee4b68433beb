"""When a measured figure reproduces a published one: the tolerance rule of `archbench reproduce`.

2% where the figure is printed with three or more significant digits; otherwise half a unit of
the last printed digit, widened by 1% (parameters) or 1.5% (MACs): "25" (M) accepts 24.255–25.755.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True)
class Tolerance:
    published: float
    low: float
    high: float
    significant_digits: int

    def accepts(self, measured: float) -> bool:
        return self.low <= measured <= self.high

    def delta_pct(self, measured: float) -> float:
        return 100.0 * (measured - self.published) / self.published


def significant_digits(text: str) -> int:
    """Digits as printed, leading zeros dropped: "25" -> 2, "4.0" -> 2, "0.65" -> 2, "22.41" -> 4."""
    return max(len(text.strip().lstrip("+-").replace(".", "").lstrip("0")), 1)


def tolerance(published: str, kind: Literal["params", "macs"]) -> Tolerance:
    """The accepted interval around ``published`` (a string, as printed in the paper)."""
    value = float(published)
    digits = significant_digits(published)
    if digits >= 3:
        return Tolerance(value, value * 0.98, value * 1.02, digits)
    exponent = Decimal(published).as_tuple().exponent
    half_unit = 0.5 * 10.0 ** int(exponent)  # "25" -> 0.5, "4.0" -> 0.05, "0.65" -> 0.005
    slack = 0.01 if kind == "params" else 0.015
    return Tolerance(value, (value - half_unit) * (1 - slack), (value + half_unit) * (1 + slack), digits)
