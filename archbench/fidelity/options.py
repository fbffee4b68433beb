"""The options of one fidelity study as data: which space, how many architectures and seeds, the
cheap proxy (the search's own TrainConfig) and the costlier reference fidelity it is judged against.

The manifest stores them as one dict (``to_dict``/``from_dict``); ``--reference KEY=VALUE,…`` names
TrainConfig settings by their search-flag names (``epochs=8,proxy_width_mult=0.5``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from archbench.errors import UserError
from archbench.train.config import TrainConfig

# The reference fidelity, as changes to the proxy's TrainConfig: the whole training split (2.5× the
# default proxy's images), twice the epochs and a one-epoch warm-up, five times the proxy's training
# (docs/fidelity.md gives the measurements behind it). The default study must run on 2 cores in 30
# minutes, so it is a longer training, not the full architecture at full resolution: on a machine
# with more to spend, raise width, depth and resolution.
REFERENCE_CHANGES: dict[str, Any] = {"train_images": None, "epochs": 6, "warmup_epochs": 1}
# Settings --reference may change: what makes one fidelity costlier than another.
REFERENCE_KEYS = (
    "epochs", "train_images", "proxy_img_size", "proxy_width_mult", "proxy_depth_mult", "batch_size", "lr", "weight_decay",
    "warmup_epochs", "label_smoothing", "mixup", "cutmix",
)
MAX_ARCHS = 512  # each architecture is trained (seeds + reference seeds) times: a study, not a sweep
MAX_SEEDS = 16
_PER_TRIAL = frozenset({"threads", "device"})  # decided per run / per evaluation, not settings of the study


def _search_proxy() -> TrainConfig:
    # The proxy a default search trains: the study judges exactly that signal.
    from archbench.search.options import SearchOptions

    return SearchOptions().train


@dataclass(frozen=True)
class FidelityOptions:
    """Every knob of `archbench fidelity`; the defaults judge the default search's proxy.

    Example:
        >>> options = FidelityOptions(space="tiny_cpu", archs=8).with_reference("epochs=6,proxy_img_size=32")
        >>> options.reference.epochs, options.reference.proxy_width_mult
        (6, 0.5)
        >>> FidelityOptions.from_dict(options.to_dict()) == options
        True

    Args:
        space: shipped space name or space file.
        archs: architectures drawn, spread over the space's MACs range.
        seeds: proxy trainings per architecture (seed, seed + 1, …): the proxy's seed-to-seed τ
            is the noise ceiling of every trained signal.
        reference_seeds: reference trainings per architecture.
        proxy: the cheap training judged (default: the default search's).
        reference: the costlier training that stands for the truth (default: the proxy changed by
            ``REFERENCE_CHANGES``).
        latency: also time each architecture (batch 1, in the driver before training starts).
        pool: architectures measured per one drawn (the stratification pool is ``pool × archs``).
        seed: seeds the draw of architectures (the trainings use ``proxy.seed`` and ``reference.seed``).
        cpus_per_trial: CPU threads per evaluation.
        concurrency: evaluations at once (0: CPUs / cpus_per_trial).
        device: ``auto``, ``cpu`` or ``cuda``.
        ray_address: join an existing Ray cluster.
        run_dir: run folder (default ``runs/fidelity-<space>-<timestamp>``).
        resume: continue the study in ``run_dir``.
        reference_from: a study whose architectures, reference training and reference evaluations
            this one takes (``space``, ``archs``, ``pool``, ``seed``, ``latency``, ``reference`` and
            ``reference_seeds`` become its own): only the proxy is trained, to compare proxies
            against one costly reference.
    """

    space: str = "hybrid_vit"
    archs: int = 16
    seeds: int = 2
    reference_seeds: int = 1
    proxy: TrainConfig = field(default_factory=_search_proxy)
    reference: TrainConfig = None  # type: ignore[assignment]  # None: the proxy with REFERENCE_CHANGES
    latency: bool = False
    pool: int = 6
    seed: int = 0
    cpus_per_trial: int = 1
    concurrency: int = 0
    device: str = "auto"
    ray_address: str | None = None
    run_dir: str | None = None
    resume: bool = False
    reference_from: str | None = None

    def __post_init__(self) -> None:
        if self.reference is None:
            object.__setattr__(self, "reference", replace(self.proxy, **REFERENCE_CHANGES))
        checks = [
            (_is_int(self.archs) and 4 <= self.archs <= MAX_ARCHS, f"--archs must be an integer in [4, {MAX_ARCHS}] (rank correlations need at least 4), got {self.archs!r}"),
            (_is_int(self.seeds) and 1 <= self.seeds <= MAX_SEEDS, f"--seeds must be an integer in [1, {MAX_SEEDS}], got {self.seeds!r}"),
            (_is_int(self.reference_seeds) and 1 <= self.reference_seeds <= MAX_SEEDS, f"--reference-seeds must be an integer in [1, {MAX_SEEDS}], got {self.reference_seeds!r}"),
            (_is_int(self.pool) and 1 <= self.pool <= 50, f"--pool must be an integer in [1, 50], got {self.pool!r}"),
            (_is_int(self.seed) and self.seed >= 0, f"--seed must be an integer >= 0, got {self.seed!r}"),
            (_is_int(self.cpus_per_trial) and self.cpus_per_trial >= 1, f"--cpus-per-trial must be >= 1, got {self.cpus_per_trial!r}"),
            (_is_int(self.concurrency) and self.concurrency >= 0, f"--concurrency must be >= 0 (0: CPUs / cpus-per-trial), got {self.concurrency!r}"),
            (self.device in ("auto", "cpu", "cuda"), f"--device must be auto, cpu or cuda, got {self.device!r}"),
            (self.proxy.dataset == self.reference.dataset, "--reference: both fidelities train on --dataset (the reference cannot change it)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @property
    def evaluations_per_arch(self) -> int:
        return self.seeds + self.reference_seeds

    def with_reference(self, text: str) -> FidelityOptions:
        """A copy whose reference is the proxy changed by ``KEY=VALUE,…`` (on top of the default changes).

        Raises:
            UserError: an unknown key or a value of the wrong type (the message starts with ``--reference:``).
        """
        changes = dict(REFERENCE_CHANGES)
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in REFERENCE_KEYS:
                raise UserError(f"--reference: '{item}' is not KEY=VALUE with KEY one of {', '.join(REFERENCE_KEYS)}")
            changes[key] = _convert(key, value.strip())
        try:
            return replace(self, reference=replace(self.proxy, **changes))
        except UserError as err:
            raise UserError(f"--reference: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form: study settings flat, each fidelity's TrainConfig as a dict."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, TrainConfig):
                value = {k: v for k, v in asdict(value).items() if k not in _PER_TRIAL}
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FidelityOptions:
        """Options from :meth:`to_dict`'s form; unknown keys are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        train_keys = {f.name for f in fields(TrainConfig)} - _PER_TRIAL
        for name in ("proxy", "reference"):
            if isinstance(values.get(name), dict):
                values[name] = TrainConfig(**{k: v for k, v in values[name].items() if k in train_keys})
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _convert(key: str, text: str) -> Any:
    kind = {f.name: f.type for f in fields(TrainConfig)}[key]
    try:
        if kind == "int | None":
            return int(text) or None  # 0: no limit
        if kind == "int":
            return int(text)
        return float(text)
    except ValueError:
        raise UserError(f"--reference: {key} must be a {'whole ' if kind.startswith('int') else ''}number, got '{text}'") from None


# What --reference-from takes from the study it names (the flags for them cannot be given with it).
FROM_REFERENCE_STUDY = ("space", "archs", "pool", "seed", "latency", "reference", "reference_seeds")

__all__ = ["FROM_REFERENCE_STUDY", "FidelityOptions", "REFERENCE_CHANGES", "REFERENCE_KEYS"]
