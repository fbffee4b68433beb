"""One proxy-training setting as data: dataset, proxy scaling, the timm recipe's hyper-parameters,
seed and device in a frozen TrainConfig (one fidelity), with its checks and its TrialRecord columns.

Search options, trial plans and benchmarks hold a TrainConfig instead of copying its settings; a
variant is ``dataclasses.replace(config, epochs=1)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from archbench._validate import BATCH_WHY, IMG_SIZE_WHY, MAX_BATCH, MAX_IMG_SIZE, range_message
from archbench.errors import UserError

if TYPE_CHECKING:
    from archbench.spec import ArchSpec
    from archbench.train.data import Dataset


MAX_SEED = 2**31
# The --dataset forms, for help texts (archbench.train.data reads them).
DATASET_FORMS = (
    "fashion-mnist-subset | digits (both bundled) | fashion-mnist (Debian's dataset-fashion-mnist) | "
    "fashion-mnist:PATH | cifar10:PATH | cifar100:PATH | folder:PATH"
)
# Data-mixing rules of proxy training (archbench.train.mixing documents each with its paper).
MIX_RULES = ("none", "mixup", "cutmix", "transmix", "tokenmix", "tl-align", "smmix")


# TrialRecord column -> the TrainConfig field it records (``epochs`` is stored as ``proxy_epochs`` …).
RECORD_COLUMNS = {
    "dataset": "dataset",
    "proxy_img_size": "proxy_img_size",
    "proxy_width_mult": "proxy_width_mult",
    "proxy_depth_mult": "proxy_depth_mult",
    "proxy_epochs": "epochs",
    "proxy_batch_size": "batch_size",
    "proxy_lr": "lr",
    "proxy_train_images": "train_images",
    "seed": "seed",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """How a proxy is made and trained: AdamW, cosine schedule after a linear warm-up, label smoothing
    or Mixup/CutMix (timm's recipe; Touvron et al., DeiT, 2021), on a scaled-down architecture.

    Defaults give a useful CPU search proxy in seconds a trial. Bad values raise a one-line
    ValueError naming the `archbench search` option.

    Example:
        The dataset and proxy of a config (``train_proxy(proxy, data, config)`` then trains it, and
        ``TrialRecord(..., **config.record_fields(), **result.record_fields())`` records the trial):

        >>> from archbench import zoo
        >>> config = TrainConfig(dataset="digits", epochs=1, proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.34)
        >>> data = config.load_dataset()
        >>> proxy = config.proxy_of(zoo.get("deit_s"), data)
        >>> proxy.input, proxy.summary()
        (InputSpec(img_size=16, in_chans=3, num_classes=10), 'patchify | mhsa×4')
        >>> config.record_fields()["proxy_epochs"], config.for_trial(3).seed
        (1, 3)

    Args:
        dataset: ``digits`` | ``fashion-mnist`` | ``fashion-mnist:PATH`` | ``fashion-mnist-subset`` |
            ``cifar10:PATH`` | ``cifar100:PATH`` | ``folder:PATH`` (see :func:`~archbench.train.load_dataset`).
        epochs: epochs to train, >= 1.
        batch_size: training batch size (even when Mixup/CutMix is on), at most 65536.
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        warmup_epochs: linear warm-up from ``lr / 100``, in (fractional) epochs; capped below the run's length.
        label_smoothing: label smoothing of the targets, in [0, 1).
        mixup: Mixup alpha (0: off; with ``mix`` set, 0 takes DeiT's 0.8).
        cutmix: CutMix alpha (0: off; with ``mix`` set, 0 takes DeiT's 1.0).
        mix: the data-mixing rule, one of ``MIX_RULES`` (:mod:`archbench.train.mixing`); ``none``
            mixes as ``mixup``/``cutmix`` say (timm's Mixup/CutMix when either is > 0).
        proxy_img_size: resolution of the proxy and its dataset, 8 to 4096.
        proxy_width_mult: factor on every width of the architecture, in (0, 1].
        proxy_depth_mult: factor on every stage depth, in (0, 1].
        train_images: train on at most this many images of the training split, drawn per class
            (a fidelity dimension, as epochs and resolution are; None: all of them).
        seed: seeds the dataset split, weight init, shuffling, drop-path and Mixup.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        threads: intra-op CPU threads while training (None: leave torch's setting).
        min_lr: floor of the cosine decay.
        clip_grad: clip the global gradient norm to this value (None: no clipping).
        eval_batch_size: batch size of evaluation (None: 2 × ``batch_size``).
        channels_last: NHWC memory format (None: on CUDA for models with 2-D convolutions).
        knn_at_init: also take the k-NN probe of the untrained proxy (``val_knn_acc_init``); the
            probe after training (``val_knn_acc``) is always taken.
    """

    # The default proxy (docs/search.md says why each value is what it is, with measurements).
    dataset: str = "fashion-mnist-subset"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    mix: str = "none"
    proxy_img_size: int = 32
    proxy_width_mult: float = 0.5
    proxy_depth_mult: float = 0.5
    train_images: int | None = 4000
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    min_lr: float = 1e-6
    clip_grad: float | None = None
    eval_batch_size: int | None = None
    channels_last: bool | None = None
    knn_at_init: bool = False

    def __post_init__(self) -> None:
        checks = [
            (_is_int(self.epochs) and self.epochs >= 1, f"--epochs must be an integer >= 1, got {self.epochs!r}"),
            (_is_int(self.batch_size) and self.batch_size >= 1, f"--batch-size must be an integer >= 1, got {self.batch_size!r}"),
            (not _is_int(self.batch_size) or self.batch_size <= MAX_BATCH, range_message("--batch-size", 1, MAX_BATCH, BATCH_WHY, self.batch_size)),
            (self.lr > 0, f"--lr must be > 0, got {self.lr!r}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}"),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}"),
            (0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}"),
            (
                self.mixup >= 0 and self.cutmix >= 0,
                f"--mixup and --cutmix are Beta alphas >= 0 (0: off), got {self.mixup!r}, {self.cutmix!r}",
            ),
            (self.mix in MIX_RULES, f"--mix must be one of {', '.join(MIX_RULES)}, got {self.mix!r}"),
            (
                not (self.mixup > 0 or self.cutmix > 0 or self.mix != "none") or self.batch_size % 2 == 0,
                f"--batch-size: Mixup/CutMix mix pairs of images: batch_size must be even, got {self.batch_size}",
            ),
            (_is_int(self.proxy_img_size) and self.proxy_img_size >= 8, "--proxy-img-size must be >= 8"),
            (not _is_int(self.proxy_img_size) or self.proxy_img_size <= MAX_IMG_SIZE, range_message("--proxy-img-size", 8, MAX_IMG_SIZE, IMG_SIZE_WHY, self.proxy_img_size)),
            (0 < self.proxy_width_mult <= 1, "--proxy-width-mult must be in (0, 1]"),
            (0 < self.proxy_depth_mult <= 1, "--proxy-depth-mult must be in (0, 1]"),
            (
                self.train_images is None or (_is_int(self.train_images) and self.train_images >= 10),
                f"--train-images must be an integer >= 10 (None: the whole training split), got {self.train_images!r}",
            ),
            # Trial n trains with seed + n and NumPy seeds take [0, 2**32): a bound well inside that.
            (_is_int(self.seed) and 0 <= self.seed < MAX_SEED, f"--seed must be an integer in [0, {MAX_SEED}), got {self.seed!r}"),
            (
                self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit()),
                "--device must be auto, cpu or cuda",
            ),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.min_lr >= 0 and math.isfinite(self.min_lr), f"min_lr must be >= 0, got {self.min_lr!r}"),
            (self.clip_grad is None or self.clip_grad > 0, f"clip_grad must be > 0 (None: off), got {self.clip_grad!r}"),
            (self.eval_batch_size is None or 1 <= self.eval_batch_size <= MAX_BATCH,
             range_message("eval_batch_size", 1, MAX_BATCH, BATCH_WHY, self.eval_batch_size)),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def for_trial(self, number: int) -> TrainConfig:
        """The config of trial ``number`` of a run: its own seed, ``seed + number``."""
        return replace(self, seed=self.seed + int(number))

    def resolved_device(self) -> str:
        """``device`` with ``auto`` decided: ``cuda`` when this process sees a GPU, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def record_fields(self) -> dict[str, Any]:
        """The training-setting columns of a TrialRecord: ``TrialRecord(..., **config.record_fields())``.

        The one mapping from settings to result columns (``epochs`` is stored as ``proxy_epochs`` …).
        """
        return {column: getattr(self, name) for column, name in RECORD_COLUMNS.items()}

    @classmethod
    def from_record(cls, record: Any) -> TrainConfig:
        """The config a recorded trial trained with, as far as its columns tell (the inverse of
        :meth:`record_fields`; settings no column holds keep their defaults).

        Example:
            >>> config = TrainConfig(epochs=3, proxy_img_size=24, seed=7)
            >>> TrainConfig.from_record(config.record_fields()) == config
            True
        """
        get = record.get if isinstance(record, dict) else lambda key: getattr(record, key, None)
        values = {name: get(column) for column, name in RECORD_COLUMNS.items()}
        if values["dataset"] is None:  # no training settings were recorded at all
            return cls()
        return cls(**{k: v for k, v in values.items() if v is not None or k == "train_images"})

    def load_dataset(self) -> Dataset:
        """The dataset at the proxy resolution, split with this seed (DatasetError if it cannot be read)."""
        from archbench.train.data import load_dataset

        data = load_dataset(self.dataset, img_size=self.proxy_img_size, seed=self.seed)
        return data if self.train_images is None else data.with_train_images(self.train_images, seed=self.seed)

    def proxy_of(self, arch: ArchSpec, data: Dataset) -> ArchSpec:
        """``arch`` scaled to this config's proxy for ``data`` (its classes and channels)."""
        from archbench.train.proxy import scale_arch

        return scale_arch(
            arch,
            width_mult=self.proxy_width_mult,
            depth_mult=self.proxy_depth_mult,
            img_size=self.proxy_img_size,
            num_classes=data.num_classes,
            in_chans=data.in_chans,
        )


__all__ = ["TrainConfig"]
