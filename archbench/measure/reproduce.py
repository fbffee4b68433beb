"""Published vs measured: the rows of `archbench reproduce`, one per zoo preset, counted by the
audited counter (``arch_cost``) and checked against the zoo's published figures by the tolerance rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from archbench.measure.tolerance import tolerance
from archbench.zoo import get, names, published


@dataclass(frozen=True)
class ReproRow:
    name: str
    img_size: int
    published_params_m: str | None
    measured_params_m: float
    params_delta_pct: float | None
    params_ok: bool | None
    published_gmacs: str | None
    measured_gmacs: float
    gmacs_delta_pct: float | None
    gmacs_ok: bool | None
    uncounted_ops: dict[str, int]
    latency_ms_median: float | None = None
    note: str = ""
    deviation: str = ""

    @property
    def within_tolerance(self) -> bool:
        """Within tolerance on every published figure, and nothing the counter could not count."""
        return self.params_ok is not False and self.gmacs_ok is not False and not self.uncounted_ops

    @property
    def status(self) -> str:
        """"ok", "documented deviation" (out of tolerance for a reason checked and recorded in the
        zoo), or "out of tolerance"."""
        if self.within_tolerance:
            return "ok"
        return "documented deviation" if self.deviation and not self.uncounted_ops else "out of tolerance"

    @property
    def ok(self) -> bool:
        return self.status != "out of tolerance"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "within_tolerance": self.within_tolerance, "status": self.status, "ok": self.ok}


def reproduce_one(name: str, *, latency: bool = False, threads: int | None = None) -> ReproRow:
    from archbench.measure import profile

    arch = get(name)
    pub = published(name)
    prof = profile(arch, latency=latency, memory=False, threads=threads)
    params_m = prof.params / 1e6
    gmacs = prof.macs / 1e9
    p_tol = tolerance(pub.params_m, "params") if pub.params_m else None
    m_tol = tolerance(pub.gmacs, "macs") if pub.gmacs else None
    return ReproRow(
        name=name,
        img_size=prof.img_size,
        published_params_m=pub.params_m,
        measured_params_m=params_m,
        params_delta_pct=p_tol.delta_pct(params_m) if p_tol else None,
        params_ok=p_tol.accepts(params_m) if p_tol else None,
        published_gmacs=pub.gmacs,
        measured_gmacs=gmacs,
        gmacs_delta_pct=m_tol.delta_pct(gmacs) if m_tol else None,
        gmacs_ok=m_tol.accepts(gmacs) if m_tol else None,
        uncounted_ops=prof.uncounted_ops,
        latency_ms_median=prof.latency.median if prof.latency else None,
        note=pub.note,
        deviation=pub.deviation,
    )


def reproduce(selected: Iterable[str] | None = None, *, latency: bool = False, threads: int | None = None) -> list[ReproRow]:
    """Rows for ``selected`` presets (all when None), in zoo order."""
    chosen = list(selected) if selected else names()
    return [reproduce_one(n, latency=latency, threads=threads) for n in chosen]
