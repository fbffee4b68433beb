"""The Space: a parsed search space that samples ArchSpecs from a seed or an Optuna trial, tests
membership and checks budgets (each candidate's cost from ``archbench.measure.arch_cost``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import yaml

from archbench.cache import cache_dir, read_json, write_json
from archbench.quantity import format_quantity
from archbench.registry import SpecError
from archbench.space._constraints import Constraints, estimate, predicted_latency_ms
from archbench.space._describe import format_size, outline, size_log10
from archbench.space._match import contains as _contains
from archbench.space._sample import SeededSource, TrialSource, realize, to_arch
from archbench.space._schema import SpaceTree, Target, parse_tree
from archbench.space._values import InvalidSample

if TYPE_CHECKING:
    import optuna

    from archbench.measure.cost import Cost
    from archbench.spec import ArchSpec

# Structural rejections (a head count that does not divide the width) cost microseconds; measured
# draws cost a meta-device build and forward each, so they get the smaller bound.
MAX_DRAWS = 1000
MAX_BUDGET_CHECKS = 64  # measured draws per sample before giving up
RANGE_SAMPLES = 24


class SpaceInfeasible(SpecError):
    """No architecture of the space met its constraints (or was valid) within the bounded retries."""


@dataclass(frozen=True)
class SpaceRanges:
    """The spread of MACs and parameters over ``samples`` unconstrained samples (an estimate)."""

    macs: tuple[int, int]
    params: tuple[int, int]
    samples: int
    method: str

    def describe(self) -> str:
        return (
            f"MACs {format_quantity(self.macs[0])}–{format_quantity(self.macs[1])}, params "
            f"{format_quantity(self.params[0])}–{format_quantity(self.params[1])} over {self.samples} unconstrained samples ({self.method})"
        )


class Space:
    """A search space: sample it, search it with Optuna, test membership, check budgets.

    Build one with :func:`load`; ``source_text`` and ``hash`` identify it in a run manifest.
    """

    def __init__(self, data: dict[str, Any], *, file: str, fixed: ArchSpec | None = None) -> None:
        self._data = data
        self.file = file
        self._fixed = fixed
        try:
            self.tree: SpaceTree = parse_tree(data, default_name=_stem_name(file))
        except SpecError as err:
            raise SpecError(f"{file}: {err.path}" if err.path else file, err.message) from None

    # ---- identity ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.tree.name

    @property
    def layout(self) -> str:
        return self.tree.layout

    @property
    def description(self) -> str:
        return self.tree.description

    @property
    def target(self) -> Target:
        return self.tree.target

    @property
    def constraints(self) -> Constraints:
        return self.tree.constraints

    @cached_property
    def source_text(self) -> str:
        """The resolved space (``extends`` merged) as YAML, for the run manifest."""
        return yaml.safe_dump(self._data, sort_keys=False, allow_unicode=True)

    @cached_property
    def hash(self) -> str:
        canonical = json.dumps(self._data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @cached_property
    def size_log10(self) -> float:
        """log10 of the number of architectures (distinct assignments of the space's decisions)."""
        return size_log10(self.tree)

    @property
    def size_text(self) -> str:
        return format_size(self.size_log10)

    def outline(self) -> dict[str, Any]:
        """The tree of choices, as nested ``{"label", "children"}`` dicts."""
        return outline(self.tree)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data, default=str))

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {self.layout}, size 10^{self.size_log10:.1f}, file={self.file!r})"

    # ---- variants ----------------------------------------------------------------------------
    def with_constraints(self, **values: float | str | None) -> Space:
        """A copy with some budget bounds replaced, e.g. ``space.with_constraints(max_macs="2G")``."""
        merged = dataclasses.asdict(self.constraints.with_values(**values))
        data = {**self._data, "constraints": {k: v for k, v in merged.items() if v is not None}}
        return Space(data, file=self.file, fixed=self._fixed)

    def with_target(self, *, img_size: int | None = None, num_classes: int | None = None) -> Space:
        target = dataclasses.asdict(self.target)
        if img_size is not None:
            target["img_size"] = img_size
        if num_classes is not None:
            target["num_classes"] = num_classes
        return Space({**self._data, "target": target}, file=self.file, fixed=self._fixed)

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, seed: int = 0, *, constrained: bool = True, max_checks: int = MAX_BUDGET_CHECKS) -> ArchSpec:
        """The architecture for ``seed``: the same on every machine and Python version.

        With ``constrained`` (the default) each draw is measured (a meta-device build and forward
        pass at the target size, no weights allocated): a draw that does not build, or breaks the
        space's constraints, is rejected and the next tried, at most ``max_checks`` times, after
        which SpaceInfeasible says why. Without it, sampling is pure data (microseconds).

        Args:
            seed: any integer; draws depend only on (seed, attempt, parameter name).
            constrained: measure each draw and enforce the constraints.
            max_checks: measured draws before giving up.
        """
        structural: Counter[str] = Counter()
        budget: Counter[str] = Counter()
        examples: dict[str, str] = {}
        measured: list[Cost] = []
        checks = 0
        for attempt in range(MAX_DRAWS):
            try:
                arch = self._draw(SeededSource(seed, attempt))
                if not constrained:
                    return arch
                checks += 1
                problem = self.check_arch(arch)
            except InvalidSample as err:
                structural[str(err)] += 1
            else:
                if problem is None:
                    return arch
                measured.append(self.estimate(arch))
                budget[_constraint_named(problem)] += 1
                examples.setdefault(_constraint_named(problem), problem)
            if checks >= max_checks:
                break
        raise self._infeasible(seed, structural, budget, examples, measured)

    def suggest(self, trial: optuna.Trial, *, constrained: bool = False) -> ArchSpec:
        """Define-by-run sampling from an Optuna trial, with hierarchical parameter names
        (``stage2.block.type``, ``stage2.block.gnconv.order``): only chosen alternatives' parameters
        are suggested. An invalid draw, or one that breaks a constraint when ``constrained``, prunes
        the trial (``optuna.TrialPruned``) with the reason in the trial's user attrs.
        """
        import optuna

        try:
            arch = self._draw(TrialSource(trial))
        except InvalidSample as err:
            trial.set_user_attr("space_rejected", str(err))
            raise optuna.TrialPruned(f"invalid architecture: {err}") from None
        if constrained:
            try:
                problem = self.check_arch(arch)
            except InvalidSample as err:
                trial.set_user_attr("space_rejected", str(err))
                raise optuna.TrialPruned(f"invalid architecture: {err}") from None
            if problem is not None:
                trial.set_user_attr("constraint_violated", problem)
                raise optuna.TrialPruned(f"constraint: {problem}")
        return arch

    def _draw(self, source: Any) -> ArchSpec:
        if self._fixed is not None:
            return self._fixed.with_input(img_size=self.target.img_size, num_classes=self.target.num_classes)
        data, numbers = realize(self.tree, source)
        arch = to_arch(data, numbers, self.name)
        return dataclasses.replace(arch, name=f"{self.name}-{arch.hash[:8]}")

    # ---- membership and budgets --------------------------------------------------------------
    def contains(self, arch: ArchSpec | str) -> bool:
        """Whether the space can produce ``arch`` (a spec or zoo name); name, input size and
        drop-path rate are not compared (the space's target sets the input)."""
        if isinstance(arch, str):
            from archbench import load_arch

            arch = load_arch(arch)
        return _contains(self.tree, arch)

    def check_constraints(self, params: float, macs: float, latency_ms: float | None = None) -> str | None:
        """The violated constraint as a sentence, or None when ``params``/``macs``/latency fit."""
        return self.constraints.violated(params, macs, latency_ms)

    def estimate(self, arch: ArchSpec) -> Cost:
        """Parameters and MACs of ``arch`` at its input size, counted without allocating weights
        (``archbench.measure.arch_cost``, cached by architecture hash: `space show` reuses what
        sampling measured).

        Raises InvalidSample when ``arch`` does not build or run at its input size.
        """
        return estimate(arch)

    def check_arch(self, arch: ArchSpec) -> str | None:
        """Measure ``arch`` (and predict its latency when max_latency_ms is set) against the constraints.

        Raises InvalidSample when it does not build or run at the target size.
        """
        found = self.estimate(arch)
        latency = predicted_latency_ms(arch) if self.constraints.max_latency_ms is not None else None
        return self.constraints.violated(found.params, found.macs, latency)

    def ranges(self, samples: int = RANGE_SAMPLES) -> SpaceRanges:
        """Min/max MACs and parameters over ``samples`` unconstrained draws (cached per space hash)."""
        from archbench import __version__

        key = f"{self.hash}-{samples}-{__version__}"
        cache_file = cache_dir("space-ranges") / f"{key}.json"
        cached = read_json(cache_file)
        if isinstance(cached, dict) and {"macs", "params", "samples", "method"} <= set(cached):
            return SpaceRanges(tuple(cached["macs"]), tuple(cached["params"]), cached["samples"], cached["method"])  # type: ignore[arg-type]
        found = []
        for seed in range(samples):
            try:
                found.append(self.estimate(self.sample(seed, constrained=False)))
            except InvalidSample:
                continue  # ranges describe what can be built
        if not found:
            raise SpaceInfeasible(self.file, f"none of {samples} samples builds; try `archbench space show` for the reason")
        methods = sorted({e.method for e in found})
        result = SpaceRanges(
            macs=(min(e.macs for e in found), max(e.macs for e in found)),
            params=(min(e.params for e in found), max(e.params for e in found)),
            samples=samples,
            method=methods[0] if len(methods) == 1 else "; ".join(methods),
        )
        write_json(cache_file, dataclasses.asdict(result))
        return result

    def check_feasible(self, samples: int = RANGE_SAMPLES) -> None:
        """Raise SpaceInfeasible when a constraint lies outside the space's estimated range."""
        c = self.constraints
        if not c.needs_estimate:
            return
        spread = self.ranges(samples)
        lo_macs, hi_macs = spread.macs
        problems = []
        if c.max_macs is not None and c.max_macs < lo_macs:
            problems.append(("max_macs", f"max_macs {format_quantity(c.max_macs)} is below every sample"))
        if c.min_macs is not None and c.min_macs > hi_macs:
            problems.append(("min_macs", f"min_macs {format_quantity(c.min_macs)} is above every sample"))
        if c.max_params is not None and c.max_params < spread.params[0]:
            problems.append(("max_params", f"max_params {format_quantity(c.max_params)} is below every sample"))
        if problems:
            key, text = problems[0]
            raise SpaceInfeasible(f"{self.file}: constraints.{key}", f"{text}: the space spans {spread.describe()}")

    def _infeasible(
        self, seed: int, structural: Counter[str], budget: Counter[str], examples: dict[str, str], measured: list[Cost]
    ) -> SpaceInfeasible:
        draws = sum(structural.values()) + sum(budget.values())
        if not budget:
            reason, count = structural.most_common(1)[0]
            return SpaceInfeasible(
                self.file,
                f"no valid architecture in {draws} draws (seed {seed}); most common problem ({count}×): {reason}",
            )
        reason, count = budget.most_common(1)[0]
        # The rejected draws are unconstrained samples: their spread is the space's, as estimated.
        spread = SpaceRanges(
            macs=(min(e.macs for e in measured), max(e.macs for e in measured)),
            params=(min(e.params for e in measured), max(e.params for e in measured)),
            samples=len(measured),
            method=measured[0].method,
        )
        return SpaceInfeasible(
            f"{self.file}: constraints.{reason}" if reason in _CONSTRAINT_NAMES else f"{self.file}: constraints",
            f"no sample met the constraints ({self.constraints.describe()}) in {len(measured)} measured draws (seed {seed}); "
            f"most often broken: {reason} ({count}×, e.g. {examples[reason]}); the space spans {spread.describe()}",
        )


_CONSTRAINT_NAMES = ("max_macs", "min_macs", "max_params", "max_latency_ms")


def _constraint_named(problem: str) -> str:
    for name in _CONSTRAINT_NAMES:
        if name in problem:
            return name
    return problem


def _stem_name(file: str) -> str:
    base = os.path.basename(file.split(":", 1)[-1])
    for suffix in (".yaml", ".yml", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in base)
    return safe or "space"
