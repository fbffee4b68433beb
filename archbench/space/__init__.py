"""The search-space language: a YAML file (or a zoo preset, a space of size one) becomes a Space
that samples valid ArchSpecs from a seed or an Optuna trial, under budget constraints.

Example:
    >>> space = archbench.space.load("tiny_cpu")
    >>> arch = space.sample(seed=0)
    >>> space.contains(arch)
    True

The language is documented in ``docs/space-language.md``.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from archbench.registry import SpecError
from archbench.space._constraints import ESTIMATE_METHOD, Constraints, Estimate, estimate, fmt_quantity, measure_latency_ms, read_cache, write_cache
from archbench.space._describe import format_size, outline, size_log10
from archbench.space._match import contains as _contains
from archbench.space._read import Document, load_document, read_file
from archbench.space._sample import SeededSource, TrialSource, realize, to_arch
from archbench.space._schema import SpaceTree, Target, parse_tree
from archbench.space._values import InvalidSample

if TYPE_CHECKING:
    import optuna

    from archbench.spec import ArchSpec

__all__ = [
    "ESTIMATE_METHOD", "Constraints", "Estimate", "fmt_quantity", "InvalidSample", "Space", "SpaceInfeasible", "SpaceRanges", "Target",
    "load", "names", "shipped_dir",
]

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
            f"MACs {fmt_quantity(self.macs[0])}–{fmt_quantity(self.macs[1])}, params "
            f"{fmt_quantity(self.params[0])}–{fmt_quantity(self.params[1])} over {self.samples} unconstrained samples ({self.method})"
        )


class Space:
    """A search space: sample it, search it with Optuna, test membership, check budgets.

    Build one with :func:`load`; ``source_text`` and ``hash`` identify it in a run manifest.
    """

    def __init__(self, data: dict[str, Any], *, file: str, fixed: ArchSpec | None = None) -> None:
        self._data = data
        self.file = file
        self._fixed = fixed
        self._estimates: dict[str, Estimate] = {}  # by architecture hash: sampling measures, `show` reuses
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
        measured: list[Estimate] = []
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

    def estimate(self, arch: ArchSpec) -> Estimate:
        """Parameters and MACs of ``arch`` at its input size, counted without allocating weights.

        Raises InvalidSample when ``arch`` does not build or run at its input size.
        """
        key = arch.hash
        if key not in self._estimates:
            if len(self._estimates) >= 256:
                self._estimates.pop(next(iter(self._estimates)))
            self._estimates[key] = estimate(arch)
        return self._estimates[key]

    def check_arch(self, arch: ArchSpec) -> str | None:
        """Measure ``arch`` (and time it when max_latency_ms is set) against the constraints.

        Raises InvalidSample when it does not build or run at the target size.
        """
        found = self.estimate(arch)
        latency = measure_latency_ms(arch) if self.constraints.max_latency_ms is not None else None
        return self.constraints.violated(found.params, found.macs, latency)

    def ranges(self, samples: int = RANGE_SAMPLES) -> SpaceRanges:
        """Min/max MACs and parameters over ``samples`` unconstrained draws (cached per space hash)."""
        from archbench import __version__

        key = f"{self.hash}-{samples}-{__version__}"
        cached = read_cache(key)
        if cached is not None:
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
        write_cache(key, dataclasses.asdict(result))
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
            problems.append(("max_macs", f"max_macs {fmt_quantity(c.max_macs)} is below every sample"))
        if c.min_macs is not None and c.min_macs > hi_macs:
            problems.append(("min_macs", f"min_macs {fmt_quantity(c.min_macs)} is above every sample"))
        if c.max_params is not None and c.max_params < spread.params[0]:
            problems.append(("max_params", f"max_params {fmt_quantity(c.max_params)} is below every sample"))
        if problems:
            key, text = problems[0]
            raise SpaceInfeasible(f"{self.file}: constraints.{key}", f"{text}: the space spans {spread.describe()}")

    def _infeasible(
        self, seed: int, structural: Counter[str], budget: Counter[str], examples: dict[str, str], measured: list[Estimate]
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


# ---- loading ---------------------------------------------------------------------------------
def shipped_dir() -> Path:
    """The folder of shipped spaces: ``$ARCHBENCH_SPACES_DIR`` or ``search_spaces/`` beside the package."""
    override = os.environ.get("ARCHBENCH_SPACES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "search_spaces"


def names() -> list[str]:
    """The shipped spaces, by name (``search_spaces/*.yaml``)."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load(name_or_path: str | os.PathLike[str]) -> Space:
    """A Space from a shipped name (``hybrid_vit``), a space file, a zoo preset or an architecture
    file (the last two are spaces of size one).

    Example:
        >>> load("hybrid_vit").contains("swin_t")
        True
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    looks_like_file = text.endswith((".yaml", ".yml", ".json")) or os.sep in text or "/" in text
    if looks_like_file or (path.exists() and path.is_file()):
        return _load_file(path, text)
    if text in names():
        return _load_file(shipped_dir() / f"{text}.yaml", _display(shipped_dir() / f"{text}.yaml"))
    from archbench import zoo

    if text in zoo.names():
        arch = zoo.get(text)
        return _fixed_space(arch, f"zoo:{text}")
    options = names() + zoo.names()
    match = difflib.get_close_matches(text, options, n=1)
    hint = f"did you mean '{match[0]}'? " if match else ""
    if not shipped_dir().is_dir():
        hint += f"(the shipped spaces were not found in {shipped_dir()}; pass a file path) "
    raise SpecError(text, f"unknown space: not a shipped space ({', '.join(names()) or 'none found'}), zoo preset or file; {hint}".rstrip("; ").rstrip())


def _display(path: Path) -> str:
    """A short name for messages: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _resolve_extends(name: str, relative_to: Path, where: str) -> tuple[Path, str]:
    candidate = (relative_to / name) if not os.path.isabs(name) else Path(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        if not candidate.exists():
            raise SpecError(where, f"extends '{name}': no such file (looked at {_display(candidate)})")
        return candidate, _display(candidate)
    for option in (relative_to / f"{name}.yaml", shipped_dir() / f"{name}.yaml"):
        if option.exists():
            return option, _display(option)
    match = difflib.get_close_matches(name, names(), n=1)
    hint = f" (did you mean '{match[0]}'?)" if match else f" (shipped: {', '.join(names())})"
    raise SpecError(where, f"extends '{name}': no such space{hint}")


def _load_file(path: Path, display: str) -> Space:
    if not path.exists():
        raise SpecError(display, "no such file")
    data = read_file(path, display)
    if isinstance(data, dict) and ("input" in data or "spec_version" in data) and "extends" not in data:
        return _fixed_space(_arch_from(data, display), display)
    doc: Document = load_document(path, display, resolve_name=_resolve_extends)
    try:
        return Space(doc.data, file=doc.file)
    except SpecError as err:
        # Name the file that wrote the offending key (a parent's, when the key was inherited).
        where, _, key = err.path.partition(": ")
        owner = doc.file_of(_keys(key)) if key else doc.file
        raise SpecError(f"{owner}: {key}" if key else owner, err.message) from None


def _arch_from(data: dict[str, Any], display: str) -> ArchSpec:
    from archbench.spec import ArchSpec

    return ArchSpec.from_dict(data, source=display)


def _fixed_space(arch: ArchSpec, file: str) -> Space:
    """An architecture as a space of size one: every value fixed, so it samples to itself."""
    spec = arch.to_dict()
    data: dict[str, Any] = {
        "name": _stem_name(arch.name).replace(".", "_"),
        "description": f"the architecture {arch.name} ({file}) as a space of size one",
        "layout": spec["layout"],
        "target": spec["input"],
        "stem": spec["stem"],
        "stages": [
            {
                "depth": s["depth"],
                **({"dim": s["dim"]} if spec["layout"] == "pyramid" else {}),
                "block": s["block"],
                "downsample": s["downsample"],
            }
            for s in spec["stages"]
        ],
        "head": spec["head"],
        "drop_path_rate": spec["drop_path_rate"],
    }
    if spec["layout"] == "isotropic":
        data["dim"] = spec["stages"][0]["dim"]
        data["tokens"] = spec["tokens"]
    return Space(data, file=file, fixed=arch)


def _stem_name(file: str) -> str:
    base = os.path.basename(file.split(":", 1)[-1])
    for suffix in (".yaml", ".yml", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in base)
    return safe or "space"


def _keys(path: str) -> tuple[Any, ...]:
    """'stages.list[2].block.type' -> ('stages', 'list', 2, 'block', 'type')."""
    keys: list[Any] = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if name:
            keys.append(name)
        for index in indices:
            try:
                keys.append(int(index.rstrip("]")))
            except ValueError:
                break
    return tuple(keys)
