"""Search and report objectives: the metrics archbench optimises, their natural directions, what
evaluating each needs (the architecture, a batch of data, or training) and how reports show it, and
the ``name:direction`` text form the CLI and the run manifest use (shared by search, store and report).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from archbench.errors import UserError

# The training-free scores every trial computes at initialisation (archbench.train.zero_cost), in
# the order of their columns. Named here, not there, so this module stays free of torch.
ZERO_COST_SIGNALS = ("synflow", "nwot", "grad_norm", "snip")
# Their columns in a trial record: the scores, then the seconds each took.
ZERO_COST_COLUMNS = (*ZERO_COST_SIGNALS, *(f"{name}_seconds" for name in ZERO_COST_SIGNALS))

# What evaluating an objective takes beyond the architecture itself (counting and timing need
# nothing more): one batch of the dataset through the untrained proxy, or training the proxy.
NEEDS_DATA = "data"
NEEDS_TRAINING = "training"


@dataclass(frozen=True)
class ObjectiveInfo:
    """What archbench knows about one objective: its natural direction, what evaluating it needs,
    and how reports show it (``format(value * scale, fmt)``, then ``unit``)."""

    direction: str
    needs: str | None  # None (the architecture is enough), NEEDS_DATA or NEEDS_TRAINING
    label: str
    scale: float
    fmt: str
    unit: str


KNOWN: dict[str, ObjectiveInfo] = {
    "val_acc": ObjectiveInfo("max", NEEDS_TRAINING, "val acc (%)", 100.0, ".1f", "%"),
    "val_knn_acc": ObjectiveInfo("max", NEEDS_TRAINING, "k-NN acc (%)", 100.0, ".1f", "%"),  # DINO's probe
    "macs": ObjectiveInfo("min", None, "GMACs", 1e-9, ".2f", " G"),
    "params": ObjectiveInfo("min", None, "params (M)", 1e-6, ".2f", " M"),
    "latency_ms": ObjectiveInfo("min", None, "latency (ms)", 1.0, ".1f", " ms"),
    # The per-layer latency table's prediction (archbench.measure.latency_table): no model timed.
    "latency_pred_ms": ObjectiveInfo("min", None, "pred. latency (ms)", 1.0, ".1f", " ms"),
    # Unitless scores spanning orders of magnitude between architectures: 3 significant digits.
    **{name: ObjectiveInfo("max", NEEDS_DATA, name, 1.0, ".3g", "") for name in ZERO_COST_SIGNALS},
}
OBJECTIVES = {name: info.direction for name, info in KNOWN.items()}
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

    @property
    def needs_training(self) -> bool:
        """Only a trained proxy gives it (``val_acc``)."""
        return KNOWN[self.name].needs == NEEDS_TRAINING

    @property
    def needs_data(self) -> bool:
        """It needs the dataset: a trained proxy, or a batch at initialisation (zero-cost scores).

        Example:
            >>> [(o.name, o.needs_data, o.needs_training) for o in parse_objectives("synflow,macs")]
            [('synflow', True, False), ('macs', False, False)]
        """
        return KNOWN[self.name].needs is not None

    def show(self, value: float) -> str:
        """``value`` (in its column's units) as reports show it, e.g. GMACs for ``macs``."""
        info = KNOWN[self.name]
        return format(value * info.scale, info.fmt)

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


__all__ = [
    "DEFAULT_OBJECTIVES",
    "KNOWN",
    "OBJECTIVES",
    "ZERO_COST_COLUMNS",
    "ZERO_COST_SIGNALS",
    "Objective",
    "ObjectiveInfo",
    "format_objectives",
    "objectives_from_records",
    "parse_objectives",
]
