"""Budget constraints of a space (max/min MACs, max params, measured max latency) and the check
of one candidate against them, its cost counted by ``archbench.measure.arch_cost`` (fast counter).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Mapping

from archbench.quantity import format_quantity
from archbench.quantity import parse_quantity
from archbench.registry import SpecError
from archbench.space._values import InvalidSample

if TYPE_CHECKING:
    from archbench.measure.cost import Cost
    from archbench.spec import ArchSpec

# How `estimate` counts (archbench.measure.arch_cost's fast counter), for `space show`.
ESTIMATE_METHOD = "meta-device build, matrix products and convolutions counted (FlopCounterMode)"


@dataclass(frozen=True)
class Constraints:
    """Bounds every sample must meet before it is trained; None means no bound.

    Args:
        max_macs: most multiply-accumulates of one forward pass at the space's target size.
        min_macs: fewest MACs (keeps a search away from trivially small models).
        max_params: most unique parameters.
        max_latency_ms: most median CPU latency (batch 1, one thread). Sampling checks the latency
            table's prediction (``latency_pred_ms``: layers new to the table are timed once);
            a search's trials measure every candidate whole before training and reject it on that.
    """

    max_macs: float | None = None
    min_macs: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None

    @property
    def needs_estimate(self) -> bool:
        return any(v is not None for v in (self.max_macs, self.min_macs, self.max_params))

    @property
    def active(self) -> bool:
        return self.needs_estimate or self.max_latency_ms is not None

    def violated(self, params: float, macs: float, latency_ms: float | None = None) -> str | None:
        """The first bound broken, as a sentence, or None when all hold."""
        if self.max_macs is not None and macs > self.max_macs:
            return f"{format_quantity(macs)}MACs exceeds max_macs {format_quantity(self.max_macs)}"
        if self.min_macs is not None and macs < self.min_macs:
            return f"{format_quantity(macs)}MACs is below min_macs {format_quantity(self.min_macs)}"
        if self.max_params is not None and params > self.max_params:
            return f"{format_quantity(params)} parameters exceeds max_params {format_quantity(self.max_params)}"
        if self.max_latency_ms is not None and latency_ms is not None and latency_ms > self.max_latency_ms:
            return f"predicted latency {latency_ms:.2f} ms exceeds max_latency_ms {self.max_latency_ms:g}"
        return None

    def with_values(self, **values: float | str | None) -> Constraints:
        """A copy with some bounds replaced (strings such as "6G" are accepted)."""
        parsed = {k: parse_quantity(v, k, k) if v is not None else None for k, v in values.items()}
        unknown = set(parsed) - {f.name for f in fields(self)}
        if unknown:
            raise SpecError(sorted(unknown)[0], f"unknown constraint (known: {', '.join(f.name for f in fields(self))})")
        return replace(self, **parsed)

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                parts.append(f"{f.name} {value:g}" if f.name == "max_latency_ms" else f"{f.name} {format_quantity(value)}")
        return ", ".join(parts) or "none"


def parse_constraints(raw: Any, path: str) -> Constraints:
    if raw is None:
        return Constraints()
    if not isinstance(raw, Mapping):
        raise SpecError(path, "expected a mapping such as {max_macs: 6G, max_params: 30M}")
    known = [f.name for f in fields(Constraints)]
    values: dict[str, float | None] = {}
    for key, value in raw.items():
        if key not in known:
            import difflib

            match = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else f" (known: {', '.join(known)})"
            raise SpecError(f"{path}.{key}", f"unknown constraint{hint}")
        values[key] = None if value is None else parse_quantity(value, f"{path}.{key}", key)
    constraints = Constraints(**values)
    if constraints.min_macs is not None and constraints.max_macs is not None and constraints.min_macs > constraints.max_macs:
        raise SpecError(f"{path}.min_macs", "min_macs is larger than max_macs: no architecture can meet both")
    return constraints


# ---- estimates -------------------------------------------------------------------------------
def estimate(arch: ArchSpec) -> Cost:
    """Parameters and MACs of ``arch`` at its input size, counted without allocating weights.

    A layer that refuses the architecture (a SpecError from its factory) or a forward pass that
    fails (a shape error at this input size) raises InvalidSample: the sampler draws again.
    """
    from archbench.measure.cost import arch_cost

    try:
        return arch_cost(arch)
    except SpecError as err:
        raise InvalidSample(f"build {err.path}" if err.path else "build", err.message) from None
    except Exception as err:  # noqa: BLE001 - any failure of a candidate's forward pass rejects it
        raise InvalidSample("forward", f"{type(err).__name__}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def predicted_latency_ms(arch: ArchSpec) -> float:
    """The latency table's CPU prediction (batch 1, one thread) for the max_latency_ms constraint:
    no whole model is built, and layers the table has seen cost nothing to look up."""
    from archbench.measure.latency_table import predict_latency

    return predict_latency(arch, threads=1).latency_pred_ms
