"""What a space's architectures cost before any is trained: distributions of parameters and MACs
over random samples, the share each constraint accepts, block-type frequencies and the extremes.

Every sample is counted by ``archbench.measure.arch_cost`` (the per-layer cache: thousands a second
once its layers are known), the counter the space's constraints are checked with.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archbench.space._values import InvalidSample

if TYPE_CHECKING:
    from archbench.space._space import Space

__all__ = ["SampleCost", "SpaceStats", "histogram", "space_stats"]

# The bounds `archbench space stats` checks each sample against; max_latency_ms too when latency
# was predicted at the bound's one thread (`--latency 1`).
COUNTED_BOUNDS = ("max_macs", "min_macs", "max_params")
LATENCY_BOUND = "max_latency_ms"


@dataclass(frozen=True)
class SampleCost:
    """One unconstrained sample: its cost, or why it does not run at the space's target size."""

    seed: int
    name: str
    summary: str
    blocks: tuple[tuple[str, int], ...]  # (block type, depth) per stage
    params: int | None = None
    macs: int | None = None
    error: str | None = None
    latency_pred_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "name": self.name, "summary": self.summary, "params": self.params, "macs": self.macs,
                "latency_pred_ms": self.latency_pred_ms, "error": self.error, "blocks": [list(b) for b in self.blocks]}


@dataclass(frozen=True)
class SpaceStats:
    """The costs of ``len(samples)`` unconstrained draws of one space (seeds ``seed``, ``seed+1``, …)."""

    space: str
    seed: int
    samples: tuple[SampleCost, ...]
    constraints: dict[str, float]
    seconds: float
    layers_measured: int = 0
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    latency_threads: int | None = None  # threads the latency was predicted with, if it was

    @property
    def runnable(self) -> list[SampleCost]:
        return [s for s in self.samples if s.error is None]

    def acceptance(self) -> dict[str, float]:
        """Share of all samples each bound accepts (a sample that does not run is accepted by none),
        with ``runs`` (the share that builds and runs) and ``all`` (every bound at once)."""
        total = max(len(self.samples), 1)
        runnable = self.runnable
        shares: dict[str, float] = {"runs": len(runnable) / total}
        checked = (*COUNTED_BOUNDS, LATENCY_BOUND) if self.latency_threads == 1 else COUNTED_BOUNDS
        checks = {name: _bound_check(name, value) for name, value in self.constraints.items() if name in checked}
        for name, check in checks.items():
            shares[name] = sum(1 for s in runnable if check(s)) / total
        shares["all"] = sum(1 for s in runnable if all(c(s) for c in checks.values())) / total
        return shares

    def block_frequencies(self) -> dict[str, dict[str, float]]:
        """Per block type: its share of all blocks drawn (weighted by depth), and of samples using it."""
        blocks: Counter[str] = Counter()
        using: Counter[str] = Counter()
        for s in self.samples:
            for kind, depth in s.blocks:
                blocks[kind] += depth
            using.update({kind for kind, _ in s.blocks})
        total_blocks = max(sum(blocks.values()), 1)
        total = max(len(self.samples), 1)
        return {kind: {"blocks": n / total_blocks, "samples": using[kind] / total} for kind, n in blocks.most_common()}

    def stage_frequencies(self) -> list[dict[str, float]]:
        """Per stage: the share of samples drawing each block type there."""
        stages: list[Counter[str]] = []
        for s in self.samples:
            for i, (kind, _) in enumerate(s.blocks):
                while len(stages) <= i:
                    stages.append(Counter())
                stages[i][kind] += 1
        return [{k: v / max(sum(c.values()), 1) for k, v in c.most_common()} for c in stages]

    def extremes(self) -> dict[str, SampleCost]:
        runnable = self.runnable
        if not runnable:
            return {}
        return {
            "fewest_params": min(runnable, key=lambda s: s.params or 0),
            "most_params": max(runnable, key=lambda s: s.params or 0),
            "fewest_macs": min(runnable, key=lambda s: s.macs or 0),
            "most_macs": max(runnable, key=lambda s: s.macs or 0),
        }

    def errors(self) -> Counter[str]:
        return Counter(s.error for s in self.samples if s.error is not None)

    def quantiles(self, metric: str) -> dict[str, float]:
        values = sorted(float(getattr(s, metric)) for s in self.runnable if getattr(s, metric) is not None)
        if not values:
            return {}
        return {f"p{q}": _quantile(values, q / 100) for q in (0, 10, 50, 90, 100)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "samples": len(self.samples),
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "layers_measured": self.layers_measured,
            "count_method": self.method,
            "latency_threads": self.latency_threads,
            "constraints": self.constraints,
            "acceptance": self.acceptance(),
            "params": self.quantiles("params"),
            "macs": self.quantiles("macs"),
            "latency_pred_ms": self.quantiles("latency_pred_ms") if any(s.latency_pred_ms is not None for s in self.runnable) else {},
            "block_frequencies": self.block_frequencies(),
            "stage_frequencies": self.stage_frequencies(),
            "extremes": {k: v.to_dict() for k, v in self.extremes().items()},
            "errors": dict(self.errors().most_common()),
            "costs": [s.to_dict() for s in self.samples],
        }


def space_stats(
    space: Space, samples: int, *, seed: int = 0, latency_threads: int | None = None, progress: Callable[[int], None] | None = None
) -> SpaceStats:
    """Count ``samples`` unconstrained draws of ``space`` (seeds ``seed`` …) at its target size; with
    ``latency_threads`` also predict each one's CPU latency from the per-layer latency table (layers
    new to the table are timed: slow the first time, on an idle machine).

    Example:
        >>> stats = space_stats(archbench.space.load("tiny_cpu"), 20)
        >>> len(stats.samples), 0 < stats.acceptance()["all"] <= 1
        (20, True)
    """
    from archbench.measure import layer_cost
    from archbench.space._constraints import ESTIMATE_METHOD, estimate

    start = time.perf_counter()
    before = layer_cost.measured_total()
    out = []
    for i in range(samples):
        arch = space.sample(seed + i, constrained=False)
        blocks = tuple((st.block.type, st.depth) for st in arch.stages)
        try:
            cost = estimate(arch)
        except InvalidSample as err:
            out.append(SampleCost(seed + i, arch.name, arch.summary(), blocks, error=str(err)))
        else:
            latency = None
            if latency_threads is not None:
                from archbench.measure.latency_table import predict_latency

                latency = predict_latency(arch, threads=latency_threads).latency_pred_ms
            out.append(SampleCost(seed + i, arch.name, arch.summary(), blocks, params=cost.params, macs=cost.macs, latency_pred_ms=latency))
        if progress is not None:
            progress(i + 1)
    bounds = {k: v for k, v in space.constraints.to_dict().items() if v is not None}
    return SpaceStats(space=space.name, seed=seed, samples=tuple(out), constraints=bounds, seconds=time.perf_counter() - start,
                      layers_measured=layer_cost.measured_total() - before, method=ESTIMATE_METHOD, latency_threads=latency_threads)


def histogram(values: list[float], bins: int = 12, *, log: bool = True) -> list[tuple[float, float, int]]:
    """(low, high, count) per bin, equal widths in log10 when ``log`` (costs span decades)."""
    if not values:
        return []
    xs = [math.log10(max(v, 1e-9)) for v in values] if log else list(values)
    lo, hi = min(xs), max(xs)
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = [0] * bins
    for x in xs:
        counts[min(int((x - lo) / width), bins - 1)] += 1
    edges = [lo + i * width for i in range(bins + 1)]
    back = (lambda e: 10**e) if log else (lambda e: e)
    return [(back(edges[i]), back(edges[i + 1]), counts[i]) for i in range(bins)]


def _bound_check(name: str, value: float) -> Callable[[SampleCost], bool]:
    if name == "max_macs":
        return lambda s: (s.macs or 0) <= value
    if name == "min_macs":
        return lambda s: (s.macs or 0) >= value
    if name == LATENCY_BOUND:
        return lambda s: s.latency_pred_ms is not None and s.latency_pred_ms <= value
    return lambda s: (s.params or 0) <= value


def _quantile(values: list[float], q: float) -> float:
    pos = q * (len(values) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)
