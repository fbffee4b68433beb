"""Hypervolume of a Pareto front (Zitzler & Thiele, 1998) inside a stated, normalised box, so that
two runs measured against the same box can be compared; the volume itself comes from moocore.

moocore's ``hypervolume`` is exact in any dimension and public (Optuna's own is a private module);
docs/report.md says why, and the tests pin its values against hand counts and Optuna's public plot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from archbench.errors import UserError
from archbench.registry import SpecError

if TYPE_CHECKING:
    from archbench.objectives import Objective

# The reference point lies this fraction of each objective's range beyond the worst point seen, so
# the worst points of the front still add volume (a reference on the nadir gives them none).
MARGIN = 0.1



IMPLEMENTATION = "moocore.hypervolume"


@dataclass(frozen=True)
class Box:
    """The normalisation of a hypervolume: per objective, an ideal (maps to 0) and a reference
    point (maps to 1), in the objective's own units and direction.

    Every point is mapped to minimisation form ``z = (x - ideal) / (reference - ideal)``; the
    hypervolume is the volume of ``[z, 1]^m`` covered by the front, so 1.0 would be one point at
    the ideal in every objective and 0.0 a front that reaches no further than the reference.

    Example:
        >>> box = Box(("val_acc", "macs"), ("max", "min"), ideal=(1.0, 0.0), reference=(0.0, 4e9))
        >>> round(hypervolume([[0.8, 1e9]], box), 3)
        0.6
    """

    names: tuple[str, ...]
    directions: tuple[str, ...]
    ideal: tuple[float, ...]
    reference: tuple[float, ...]
    source: str = "data"  # "data" (derived from the points reported) or "--hv-bounds"

    def normalise(self, values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Points (rows, original units) in the box's minimisation coordinates."""
        points = np.asarray(values, dtype=float).reshape(-1, len(self.names))
        ideal, reference = np.array(self.ideal), np.array(self.reference)
        return (points - ideal) / (reference - ideal)

    def flag(self) -> str:
        """The ``--hv-bounds`` value that reproduces this box in another report."""
        return ",".join(f"{n}={_fmt(i)}:{_fmt(r)}" for n, i, r in zip(self.names, self.ideal, self.reference))

    def to_dict(self) -> dict[str, Any]:
        return {
            "objectives": [{"name": n, "direction": d} for n, d in zip(self.names, self.directions)],
            "ideal": dict(zip(self.names, self.ideal)),
            "reference_point": dict(zip(self.names, self.reference)),
            "normalisation": "z = (x - ideal) / (reference - ideal) per objective; hypervolume of [z, 1]^m",
            "source": self.source,
            "hv_bounds_flag": self.flag(),
            "implementation": IMPLEMENTATION,
        }


def box_from_data(values: np.ndarray, objectives: Sequence[Objective], *, margin: float = MARGIN) -> Box | None:
    """The box spanned by ``values`` (rows with NaN ignored): ideal = best value seen in each
    objective, reference = worst + ``margin`` × range. None when there is no complete row."""
    points = np.asarray(values, dtype=float).reshape(-1, len(objectives))
    points = points[~np.isnan(points).any(axis=1)]
    if len(points) == 0:
        return None
    ideal, reference = [], []
    for k, o in enumerate(objectives):
        column = points[:, k]
        best, worst = (column.max(), column.min()) if o.direction == "max" else (column.min(), column.max())
        span = abs(worst - best)
        if span == 0:  # one value only: any positive width gives it the same share of the box
            span = abs(best) or 1.0
        step = span * margin if abs(worst - best) > 0 else span
        reference.append(float(worst - step) if o.direction == "max" else float(worst + step))
        ideal.append(float(best))
    return Box(tuple(o.name for o in objectives), tuple(o.direction for o in objectives), tuple(ideal), tuple(reference))


def parse_bounds(text: str, objectives: Sequence[Objective], fallback: Box | None) -> Box:
    """``"val_acc=1:0,macs=0:6G"`` (ideal:reference per objective) -> a Box; objectives left out
    keep ``fallback``'s bounds.

    Raises:
        ValueError: unknown objective, malformed number, or ideal equal to reference.
    """
    names = [o.name for o in objectives]
    given: dict[str, tuple[float, float]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, bounds = item.partition("=")
        ideal_text, colon, reference_text = bounds.partition(":")
        if not eq or not colon:
            raise UserError(f"--hv-bounds: expected NAME=IDEAL:REFERENCE, got '{item}'")
        if name not in names:
            raise UserError(f"--hv-bounds: '{name}' is not an objective of this report ({', '.join(names)})")
        ideal, reference = _quantity(ideal_text, item), _quantity(reference_text, item)
        if ideal == reference:
            raise UserError(f"--hv-bounds: ideal and reference of '{name}' are equal")
        given[name] = (ideal, reference)
    ideal_all, reference_all = [], []
    for o in objectives:
        if o.name in given:
            ideal, reference = given[o.name]
        elif fallback is not None:
            k = fallback.names.index(o.name)
            ideal, reference = fallback.ideal[k], fallback.reference[k]
        else:
            raise UserError(f"--hv-bounds: give bounds for '{o.name}' too (no trial has a value to derive them from)")
        ideal_all.append(ideal)
        reference_all.append(reference)
    return Box(tuple(names), tuple(o.direction for o in objectives), tuple(ideal_all), tuple(reference_all), source="--hv-bounds")


def hypervolume(values: np.ndarray | Sequence[Sequence[float]], box: Box) -> float:
    """Hypervolume of the points ``values`` (rows in original units) inside ``box``.

    Rows with a missing objective, and points no better than the reference point in some
    objective, add nothing (they are dropped before Optuna sees them); dominated rows and
    duplicates are harmless.
    """
    z = box.normalise(values)
    z = z[~np.isnan(z).any(axis=1)]
    z = z[(z < 1.0).all(axis=1)]
    if len(z) == 0:
        return 0.0
    import moocore  # a maintained, public implementation (the WFG algorithm in C), not Optuna internals

    return float(moocore.hypervolume(z, ref=np.ones(z.shape[1])))


def _quantity(text: str, item: str) -> float:
    from archbench.quantity import parse_quantity

    try:
        return parse_quantity(text, positive=False)
    except SpecError:
        raise UserError(f"--hv-bounds: '{text}' in '{item}' is not a number, or not finite (e.g. 0.9, 6G, 20M)") from None


def _fmt(value: float) -> str:
    if abs(value) >= 1e15:  # a score beyond any count of MACs or parameters (synflow): no suffix
        return f"{value:.6g}"
    for suffix, scale in (("G", 1e9), ("M", 1e6)):
        if abs(value) >= scale:
            return f"{value / scale:.6g}{suffix}"
    return f"{value:.6g}"
