"""Search and report objectives: the metrics archbench optimises, their natural directions, and the
``name:direction`` text form the CLI and the run manifest use (shared by search, store and report).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from archbench.errors import UserError

OBJECTIVES = {"val_acc": "max", "macs": "min", "params": "min", "latency_ms": "min"}
DEFAULT_OBJECTIVES = "val_acc:max,macs:min"


@dataclass(frozen=True)
class Objective:
    """One objective: a name from :data:`OBJECTIVES` and ``"max"`` or ``"min"``.

    Example:
        >>> Objective("latency_ms", "min").metric
        'latency_ms_median'
    """

    name: str
    direction: str  # "max" or "min"

    @property
    def metric(self) -> str:
        """The column / Tune metric that carries it (latency objectives use the median)."""
        return "latency_ms_median" if self.name == "latency_ms" else self.name

    def to_dict(self) -> dict[str, str]:
        """The manifest's form of it."""
        return {"name": self.name, "direction": self.direction, "metric": self.metric}


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """``"val_acc:max,macs:min"`` -> objectives; a bare name takes its natural direction.

    Example:
        >>> [o.direction for o in parse_objectives("val_acc,latency_ms")]
        ['max', 'min']

    Raises:
        ValueError: an unknown name or direction, a name given twice, or no objective (the message
            starts with ``--objectives:``).
    """
    found: list[Objective] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, direction = item.partition(":")
        if name not in OBJECTIVES:
            raise UserError(f"--objectives: unknown objective '{name}' (choose from {', '.join(OBJECTIVES)})")
        direction = direction or OBJECTIVES[name]
        if direction not in ("max", "min"):
            raise UserError(f"--objectives: direction of '{name}' must be max or min, got '{direction}'")
        if any(o.name == name for o in found):
            raise UserError(f"--objectives: '{name}' is given twice")
        found.append(Objective(name, direction))
    if not found:
        raise UserError("--objectives: give at least one objective, e.g. val_acc:max,macs:min")
    return tuple(found)


def format_objectives(objectives: Sequence[Objective]) -> str:
    """The inverse of :func:`parse_objectives`: ``"val_acc:max,macs:min"``."""
    return ",".join(f"{o.name}:{o.direction}" for o in objectives)


def objectives_from_records(items: Any) -> tuple[tuple[Objective, ...] | None, list[str]]:
    """Objectives stored as ``[{"name": …, "direction": …}, …]`` (a manifest's), validated.

    Returns the known objectives (None when there are none or ``items`` is no list) and the names
    of entries this version does not know or whose direction is not max/min.
    """
    if not isinstance(items, list):
        return None, []
    found: list[Objective] = []
    unknown: list[str] = []
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item:
            continue
        name = item["name"]
        direction = item.get("direction", OBJECTIVES.get(name))
        if name not in OBJECTIVES or direction not in ("max", "min"):
            unknown.append(str(name))
            continue
        found.append(Objective(name, direction))
    return (tuple(found) or None), unknown


__all__ = ["DEFAULT_OBJECTIVES", "OBJECTIVES", "Objective", "format_objectives", "objectives_from_records", "parse_objectives"]
