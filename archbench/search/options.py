"""The options of one search, validated as data before anything starts (the CLI maps flags here):
what to search and how to schedule it, with proxy training as one embedded TrainConfig.

Everything a run needs to be resumed lives in here and is written to the run's manifest as one flat
dict (``to_dict``/``from_dict``), the same keys whether a setting belongs to the search or to training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from archbench._validate import BATCH_WHY, MAX_BATCH, range_message
from archbench.errors import UserError
from archbench.objectives import (
    DEFAULT_OBJECTIVES,
    OBJECTIVES,
    Objective,
    format_objectives,
    parse_objectives,
)
from archbench.train.config import TrainConfig

SAMPLERS = ("nsga2", "tpe", "random", "gp")
SCHEDULERS = ("fifo", "asha")
# Set per trial from --cpus-per-trial, so not a setting of the run: left out of the manifest.
_PER_TRIAL = frozenset({"threads"})
_TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in _PER_TRIAL)
# Recipe settings no flag sets: written only when changed from TrainConfig's default, so the
# manifest of a run made with flags has the same keys as before TrainConfig existed.
_WHEN_CHANGED = frozenset({"min_lr", "clip_grad", "eval_batch_size", "channels_last", "knn_at_init", "mix"})
_TRAIN_DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class SearchOptions:
    """Every knob of `archbench search`; defaults give a useful CPU search in a few minutes.

    Example:
        >>> options = SearchOptions(space="hybrid_vit", trials=8, train=TrainConfig(epochs=2))
        >>> SearchOptions.from_dict(options.to_dict()) == options
        True
    """

    space: str = "hybrid_vit"
    trials: int = 20  # ~20% of hybrid_vit draws break its 6 GMACs budget: >= 12 trained with margin
    sampler: str = "nsga2"
    objectives: tuple[Objective, ...] = field(default_factory=lambda: parse_objectives(DEFAULT_OBJECTIVES))
    train: TrainConfig = field(default_factory=TrainConfig)  # dataset, proxy, recipe, seed, device
    scheduler: str = "fifo"
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    concurrency: int = 0  # 0: as many as the resources allow
    ray_address: str | None = None
    run_dir: str | None = None
    resume: bool = False
    max_macs: float | None = None
    max_params: float | None = None
    time_budget_min: float | None = None
    latency_batch_size: int = 1
    latency_threads: int | None = None
    screen: int = 0  # candidates screened before training (0: none); see archbench.search.screen
    screen_signal: str = "synflow"  # what stands in for val_acc while screening

    def __post_init__(self) -> None:
        checks = [
            (self.trials >= 1, "--trials must be >= 1"),
            (self.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {', '.join(SCHEDULERS)}"),
            (self.cpus_per_trial >= 1, "--cpus-per-trial must be >= 1"),
            (self.gpus_per_trial >= 0, "--gpus-per-trial must be >= 0"),
            (self.concurrency >= 0, "--concurrency must be >= 0"),
            (self.time_budget_min is None or self.time_budget_min > 0, "--time-budget must be > 0 minutes"),
            (self.max_macs is None or self.max_macs > 0, "--max-macs must be > 0"),
            (self.max_params is None or self.max_params > 0, "--max-params must be > 0"),
            (self.latency_batch_size >= 1, "--latency-batch-size must be >= 1"),
            (self.latency_batch_size <= MAX_BATCH, range_message("--latency-batch-size", 1, MAX_BATCH, BATCH_WHY, self.latency_batch_size)),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        from archbench.search.screen import check_screen

        check_screen(self)
        if self.scheduler == "asha" and not any(o.name == "val_acc" for o in self.objectives):
            raise UserError("--scheduler asha prunes on val_acc: include val_acc in --objectives")

    @property
    def needs_training(self) -> bool:
        """Some objective needs a trained proxy (``val_acc``); else trials train nothing."""
        return any(o.needs_training for o in self.objectives)

    @property
    def needs_data(self) -> bool:
        """The run loads its dataset: to train, or for zero-cost objectives (scored on one batch).

        Whenever it does, every trial records the zero-cost scores; a search of architecture
        costs only (``params``, ``macs``, ``latency_ms``) reads no dataset and records none.
        """
        return any(o.needs_data for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's flat form: search and training settings side by side, objectives as text."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "train":
                data.update(
                    (k, v)
                    for k, v in asdict(self.train).items()
                    if k not in _PER_TRIAL and (k not in _WHEN_CHANGED or v != getattr(_TRAIN_DEFAULTS, k))
                )
            elif f.name == "objectives":
                data["objectives"] = format_objectives(self.objectives)
            else:
                data[f.name] = getattr(self, f.name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchOptions:
        """Options from the flat form (a manifest's, or the CLI's flags); unknown keys are ignored,
        missing ones take their defaults, ``objectives`` may be text or Objectives."""
        top = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "train"}
        if isinstance(top.get("objectives"), str):
            top["objectives"] = parse_objectives(top["objectives"])
        train = TrainConfig(**{k: v for k, v in data.items() if k in _TRAIN_KEYS})
        return cls(train=train, **top)

    @classmethod
    def flat_names(cls) -> frozenset[str]:
        """The keys of the flat form (the CLI's option names, with ``_`` for ``-``)."""
        return frozenset(k for k in cls.__dataclass_fields__ if k != "train") | frozenset(_TRAIN_KEYS)

    def changed(self, **flat: Any) -> SearchOptions:
        """A copy with settings changed by their flat names (``epochs=2``, ``trials=8``)."""
        unknown = set(flat) - self.flat_names()
        if unknown:
            raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
        return self.from_dict({**self.to_dict(), **flat})


__all__ = ["OBJECTIVES", "Objective", "SAMPLERS", "SCHEDULERS", "SearchOptions", "parse_objectives"]
