"""The options of one search, validated as data before anything starts (the CLI maps flags here).

Objectives are ``name:direction`` pairs; everything a run needs to be resumed lives in here and is
written to the run's manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OBJECTIVES = {"val_acc": "max", "macs": "min", "params": "min", "latency_ms": "min"}
SAMPLERS = ("nsga2", "tpe", "random", "gp")
SCHEDULERS = ("fifo", "asha")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "max" or "min"

    @property
    def metric(self) -> str:
        """The column / Tune metric that carries it (latency objectives use the median)."""
        return "latency_ms_median" if self.name == "latency_ms" else self.name


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """``"val_acc:max,macs:min"`` -> objectives; a bare name takes its natural direction."""
    found: list[Objective] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, direction = item.partition(":")
        if name not in OBJECTIVES:
            raise ValueError(f"--objectives: unknown objective '{name}' (choose from {', '.join(OBJECTIVES)})")
        direction = direction or OBJECTIVES[name]
        if direction not in ("max", "min"):
            raise ValueError(f"--objectives: direction of '{name}' must be max or min, got '{direction}'")
        if any(o.name == name for o in found):
            raise ValueError(f"--objectives: '{name}' is given twice")
        found.append(Objective(name, direction))
    if not found:
        raise ValueError("--objectives: give at least one objective, e.g. val_acc:max,macs:min")
    return tuple(found)


@dataclass(frozen=True)
class SearchOptions:
    """Every knob of `archbench search`; defaults give a useful CPU search in a few minutes."""

    space: str = "hybrid_vit"
    trials: int = 20  # ~20% of hybrid_vit draws break its 6 GMACs budget: >= 12 trained with margin
    sampler: str = "nsga2"
    objectives: tuple[Objective, ...] = field(default_factory=lambda: parse_objectives("val_acc:max,macs:min"))
    dataset: str = "digits"
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    proxy_img_size: int = 32
    proxy_width_mult: float = 0.25
    proxy_depth_mult: float = 0.34
    scheduler: str = "fifo"
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    concurrency: int = 0  # 0: as many as the resources allow
    device: str = "auto"
    ray_address: str | None = None
    run_dir: str | None = None
    resume: bool = False
    seed: int = 0
    max_macs: float | None = None
    max_params: float | None = None
    time_budget_min: float | None = None
    latency_batch_size: int = 1
    latency_threads: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.trials >= 1, "--trials must be >= 1"),
            (self.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {', '.join(SCHEDULERS)}"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.proxy_img_size >= 8, "--proxy-img-size must be >= 8"),
            (0 < self.proxy_width_mult <= 1, "--proxy-width-mult must be in (0, 1]"),
            (0 < self.proxy_depth_mult <= 1, "--proxy-depth-mult must be in (0, 1]"),
            (self.cpus_per_trial >= 1, "--cpus-per-trial must be >= 1"),
            (self.gpus_per_trial >= 0, "--gpus-per-trial must be >= 0"),
            (self.concurrency >= 0, "--concurrency must be >= 0"),
            (self.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (self.time_budget_min is None or self.time_budget_min > 0, "--time-budget must be > 0 minutes"),
            (self.max_macs is None or self.max_macs > 0, "--max-macs must be > 0"),
            (self.max_params is None or self.max_params > 0, "--max-params must be > 0"),
            (self.latency_batch_size >= 1, "--latency-batch-size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.scheduler == "asha" and not any(o.name == "val_acc" for o in self.objectives):
            raise ValueError("--scheduler asha prunes on val_acc: include val_acc in --objectives")

    @property
    def needs_training(self) -> bool:
        return any(o.name == "val_acc" for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objectives"] = ",".join(f"{o.name}:{o.direction}" for o in self.objectives)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchOptions:
        data = dict(data)
        data["objectives"] = parse_objectives(data["objectives"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
