"""What a fidelity study evaluates: architectures drawn from a space spread over its MACs range
(stratified, seeded), each with its audited cost, and one evaluation per (architecture, fidelity, seed).

The plan is written to the run folder before any training, so a resumed study evaluates exactly
the architectures it started with, whatever the space file says by then.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from archbench._atomic import write_atomic
from archbench.errors import UserError

if TYPE_CHECKING:
    from archbench.fidelity.options import FidelityOptions
    from archbench.space import Space
    from archbench.spec import ArchSpec

PROXY = "proxy"
REFERENCE = "reference"
FIDELITIES = (PROXY, REFERENCE)
PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedArch:
    """One architecture of the study, with its full-size cost at the space's target resolution."""

    index: int
    arch_json: str
    arch_hash: str
    arch_summary: str
    params: int
    macs: int
    latency_ms_median: float | None = None

    @property
    def arch(self) -> ArchSpec:
        from archbench.spec import ArchSpec

        return ArchSpec.from_dict(json.loads(self.arch_json))


@dataclass(frozen=True)
class Evaluation:
    """One training (or none, for cheap-only studies) of one architecture at one fidelity and seed."""

    arch_index: int
    fidelity: str  # PROXY or REFERENCE
    seed_index: int  # 0-based: the training seed is the fidelity's seed + seed_index

    @property
    def eval_id(self) -> str:
        """The trial id of its Parquet part: ``a003-proxy-s1``."""
        return f"a{self.arch_index:03d}-{self.fidelity}-s{self.seed_index}"


@dataclass(frozen=True)
class FidelityPlan:
    """The architectures of a study and the evaluations to run on them."""

    archs: tuple[PlannedArch, ...]
    seeds: int
    reference_seeds: int
    draw_seed: int
    pool_size: int
    version: int = PLAN_VERSION

    def evaluations(self) -> list[Evaluation]:
        """Every evaluation, the costly reference trainings first: started first, they do not
        leave one worker training alone at the end while the others idle."""
        ref = [Evaluation(a.index, REFERENCE, s) for a in self.archs for s in range(self.reference_seeds)]
        proxy = [Evaluation(a.index, PROXY, s) for s in range(self.seeds) for a in self.archs]
        return ref + proxy

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "archs": [asdict(a) for a in self.archs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FidelityPlan:
        if data.get("version", PLAN_VERSION) > PLAN_VERSION:
            raise ValueError(f"plan version {data['version']}; this archbench reads up to {PLAN_VERSION}")
        archs = tuple(PlannedArch(**a) for a in data["archs"])
        return cls(**{**data, "archs": archs})

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> FidelityPlan:
        """The plan in ``path``.

        Raises:
            UserError: missing or unreadable (one line naming the file).
        """
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise UserError(f"{path}: missing: the study's architectures are gone; start a new study") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: unreadable fidelity plan ({' '.join(str(err).split())})") from None


def draw_architectures(space: Space, n: int, *, seed: int, pool: int, progress: Callable[[int, int], None] | None = None) -> list[ArchSpec]:
    """``n`` distinct architectures of ``space`` spread over its MACs range.

    Draws ``pool × n`` constrained samples (seeds ``seed·10⁶ + i``), sorts the distinct ones by MACs,
    cuts them into ``n`` strata of equal count and takes one architecture per stratum at random
    (seeded). Equal-count strata follow the space's own MACs distribution from its cheapest to its
    costliest draw, so the study covers the range a search explores, ends included, without
    choosing architectures by anything but cost.

    Raises:
        UserError: the space yields fewer than ``n`` distinct architectures.
    """
    from archbench.measure import arch_cost

    found: dict[str, tuple[int, ArchSpec]] = {}
    size = pool * n
    for i in range(size):
        arch = space.sample(seed * 1_000_000 + i)
        if arch.hash not in found:
            found[arch.hash] = (arch_cost(arch).macs, arch)
        if progress is not None:
            progress(i + 1, size)
    if len(found) < n:
        raise UserError(f"--archs {n}: space '{space.name}' gave only {len(found)} distinct architectures in {size} draws")
    ordered = sorted(found.values(), key=lambda item: (item[0], item[1].hash))
    rng = random.Random(seed)
    chosen = []
    for k in range(n):
        lo, hi = math.floor(k * len(ordered) / n), math.floor((k + 1) * len(ordered) / n)
        chosen.append(ordered[rng.randrange(lo, hi)][1])
    return chosen


def make_plan(
    space: Space, options: FidelityOptions, *, progress: Callable[[str, int, int], None] | None = None
) -> FidelityPlan:
    """Draw the study's architectures, count each (audited) and, when asked, time it at batch 1.

    Latency is timed here, in the driver, before any worker trains: nothing else runs on the
    machine then, which is the isolation a measurement needs.
    """
    from archbench.builder import build
    from archbench.measure import arch_cost, measure_latency

    def tick(stage: str) -> Callable[[int, int], None]:
        return lambda done, total: progress(stage, done, total) if progress else None

    archs = draw_architectures(space, options.archs, seed=options.seed, pool=options.pool, progress=tick("drawing"))
    planned = []
    for i, arch in enumerate(archs):
        cost = arch_cost(arch, audited=True)
        latency = None
        if options.latency:
            model = build(arch, img_size=space.target.img_size, num_classes=space.target.num_classes)
            latency = measure_latency(model, space.target.img_size, batch_size=1, device="cpu", threads=options.cpus_per_trial, max_seconds=10.0).median
        planned.append(PlannedArch(i, arch.to_json(), arch.hash, arch.summary(), cost.params, cost.macs, latency))
        tick("counting")(i + 1, len(archs))
    return FidelityPlan(tuple(planned), options.seeds, options.reference_seeds, options.seed, options.pool * options.archs)


__all__ = ["Evaluation", "FIDELITIES", "FidelityPlan", "PROXY", "PlannedArch", "REFERENCE", "draw_architectures", "make_plan"]
