"""Proxy training: a few epochs of timm's recipe (AdamW, cosine with warm-up, label smoothing,
optional Mixup/CutMix; Touvron et al., DeiT, 2021) on an in-memory dataset, scored on its val split.

One function, :func:`train_proxy`, driven by a TrainConfig; a per-epoch callback lets a scheduler (Ray Tune/ASHA) stop it.
Failures the runner records as data (divergence, out of memory) raise their own error types.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn

from archbench.errors import UserError
from archbench.measure.params import count_params
from archbench.train.config import TrainConfig
from archbench.train.data import Dataset, iterate_batches, num_batches
from archbench.train.mixing import mix_rule

if TYPE_CHECKING:
    from archbench.spec import ArchSpec

# Parameters that are embeddings or biases in all but shape: weight decay would shrink them to
# zero for no regularising benefit (timm models list the same in ``no_weight_decay()``).
NO_WEIGHT_DECAY = ("*pos_embed*", "*cls_token*", "*dist_token*", "*relative_position_bias_table*", "*rel_pos*")


class TrainingError(RuntimeError):
    """Proxy training failed in a way the runner records as a failed trial (message: one line)."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite."""

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class TrainingOutOfMemory(TrainingError):
    """The device ran out of memory (CUDA OOM, or the CPU allocator failing)."""

    def __init__(self, message: str, *, device: str, batch_size: int) -> None:
        super().__init__(message)
        self.device = device
        self.batch_size = batch_size


@dataclass(frozen=True)
class EpochResult:
    """What one epoch produced, handed to ``on_epoch``.

    Args:
        epoch: 1-based index of the epoch just finished.
        epochs: how many epochs were planned.
        train_loss: mean training loss of the epoch (against the smoothed / mixed targets).
        val_loss: mean cross-entropy on the val split, in nats (no smoothing).
        val_acc: top-1 accuracy on the val split, a fraction in [0, 1].
        lr: learning rate at the end of the epoch.
        train_seconds: wall time of this epoch's training steps (evaluation excluded).
        images_per_second: training images of this epoch / ``train_seconds``.
        elapsed_seconds: wall time since training started, evaluation included.
    """

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_acc: float
    lr: float
    train_seconds: float
    images_per_second: float
    elapsed_seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train_proxy`.

    Args:
        val_acc: val accuracy after the last epoch run, a fraction in [0, 1].
        val_loss: val cross-entropy after the last epoch run, in nats.
        best_val_acc: best val accuracy over the epochs run.
        epochs_run: epochs completed (fewer than planned when ``on_epoch`` stopped training).
        stopped_early: ``on_epoch`` returned True (the runner records the trial as pruned).
        train_seconds: total wall time of training steps, evaluation excluded.
        eval_seconds: total wall time of the per-epoch evaluations.
        images_per_second: training images processed / ``train_seconds``.
        train_images: training images processed in total.
        params: unique parameters of the trained model.
        device: the device trained on, e.g. ``cpu`` or ``cuda:0``.
        peak_memory_mb: peak CUDA memory allocated during training in MiB (None on CPU).
        history: one EpochResult per epoch run.
        val_knn_acc: weighted k-NN accuracy on the val split of the trained model's classifier
            features (DINO's probe, :mod:`archbench.train.knn`), a fraction in [0, 1].
        val_knn_acc_init: the same at initialisation (None unless ``config.knn_at_init``).
        mix_rule: the data-mixing rule as applied (:mod:`archbench.train.mixing`), e.g. ``transmix``
            or ``transmix (area fallback)`` for a model without class-token attention.

    ``train_loss_sum`` is the sum of the per-epoch mean training losses, the "sum of training
    losses" (SoTL) that Ru et al. (ICLR 2021) found to predict the final accuracy (lower is better).
    """

    val_acc: float
    val_loss: float
    best_val_acc: float
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    eval_seconds: float
    images_per_second: float
    train_images: int
    params: int
    device: str
    peak_memory_mb: float | None
    history: tuple[EpochResult, ...]
    val_knn_acc: float | None = None
    val_knn_acc_init: float | None = None
    mix_rule: str = "none"

    @property
    def train_loss_sum(self) -> float:
        return sum(r.train_loss for r in self.history)

    def record_fields(self) -> dict[str, Any]:
        """The proxy-training columns of a TrialRecord: ``TrialRecord(..., **result.record_fields())``."""
        return {
            "val_acc": self.val_acc,
            "val_loss": self.val_loss,
            "best_val_acc": self.best_val_acc,
            "val_acc_history": [r.val_acc for r in self.history],
            "epochs_run": self.epochs_run,
            "train_seconds": self.train_seconds,
            "images_per_second": self.images_per_second,
            "train_peak_memory_mb": self.peak_memory_mb,
            "train_device": self.device,
            "proxy_params": self.params,
            "train_loss_sum": self.train_loss_sum,
            "val_knn_acc": self.val_knn_acc,
            "val_knn_acc_init": self.val_knn_acc_init,
            "mix_rule": self.mix_rule,
        }


def train_proxy(
    arch: ArchSpec | nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
) -> TrainResult:
    """Train ``arch`` on ``data`` as ``config`` says and evaluate on its val split after every epoch.

    AdamW (timm's ``create_optimizer_v2``; no decay on norms, biases and position embeddings),
    timm's ``CosineLRScheduler`` updated every step after a linear warm-up, and timm's label
    smoothing loss, or a data-mixing rule (Mixup/CutMix, TransMix, TokenMix, TL-Align, SMMix:
    :mod:`archbench.train.mixing`) with soft-target cross-entropy when ``mix``, ``mixup`` or
    ``cutmix`` says so. On CUDA the forward runs under bf16 autocast and conv-heavy models in
    channels_last. The same ``seed`` gives the same weights, batches and augmentations, so on CPU (same thread count)
    the same result; global RNG and thread settings are restored on return.

    ``config``'s dataset and proxy settings say how the caller makes ``data`` and the proxy
    (:meth:`TrainConfig.load_dataset`, :meth:`TrainConfig.proxy_of`); ``arch`` is trained as given.

    Example:
        One epoch of a DeiT-Ti proxy (48 wide, 4 blocks) on 16-pixel digits, in about a second:

        >>> from archbench import zoo
        >>> config = TrainConfig(dataset="digits", epochs=1, proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.34, device="cpu", threads=1)
        >>> data = config.load_dataset()
        >>> result = train_proxy(config.proxy_of(zoo.get("deit_ti"), data), data, config)
        >>> result.epochs_run, result.train_images, result.params, result.device
        (1, 1408, 150730, 'cpu')
        >>> result.val_acc > 0.5  # ten classes: far above chance after one epoch
        True
        >>> f"{result.images_per_second:.0f} images/s"  # doctest: +ELLIPSIS
        '... images/s'

    Args:
        arch: an ArchSpec (built at the dataset's resolution, classes and channels) or a module.
        data: the in-memory dataset.
        config: the training settings (epochs, batch size, lr, …, seed, device, threads).
        on_epoch: called after every epoch's evaluation; returning True stops training (pruned).

    Raises:
        TrainingDiverged: the training or validation loss became NaN or infinite.
        TrainingOutOfMemory: the device ran out of memory.
        ValueError: a bad argument (device unavailable, a dataset too small to train, ...).
    """
    _check_data(data)
    device = config.resolved_device()
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{device}' requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())

    oom: str | None = None
    with _run_settings(dev, config.threads, config.seed):
        try:
            return _train(arch, data, dev, config, on_epoch)
        except TrainingError:
            raise
        except torch.cuda.OutOfMemoryError as err:
            oom = _first_line(err)
        except RuntimeError as err:
            if "can't allocate memory" not in str(err) and "not enough memory" not in str(err):
                raise
            oom = _first_line(err)
    # Outside the except clause, so the traceback (and the model it pins) is already released.
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    raise TrainingOutOfMemory(
        f"out of memory on {dev} at batch size {config.batch_size}: {oom}", device=str(dev), batch_size=config.batch_size
    )


def _train(
    arch: ArchSpec | nn.Module,
    data: Dataset,
    dev: torch.device,
    config: TrainConfig,
    on_epoch: Callable[[EpochResult], bool | None] | None,
) -> TrainResult:
    epochs, batch_size, lr, weight_decay = config.epochs, config.batch_size, config.lr, config.weight_decay
    channels_last = config.channels_last
    cuda = dev.type == "cuda"
    model = _model(arch, data).to(dev)
    if channels_last is None:
        channels_last = cuda and any(isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) for m in model.modules())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = count_params(model)

    # The whole uint8 dataset moves to the device once; batches are index_select on the device.
    train_x, train_y = data.train_x.to(dev), data.train_y.to(dev)
    val_x, val_y = data.val_x.to(dev), data.val_y.to(dev)
    scale, shift = _affine(data, dev)
    n_train = len(train_y)
    steps_per_epoch = num_batches(n_train, batch_size, drop_last=True)
    total_steps = steps_per_epoch * epochs
    warmup_steps = min(round(config.warmup_epochs * steps_per_epoch), total_steps - 1)

    optimizer = create_optimizer_v2(
        model,
        "adamw",
        lr=lr,
        weight_decay=weight_decay,
        param_group_fn=lambda m: param_groups_weight_decay(m, weight_decay, no_weight_decay_list=NO_WEIGHT_DECAY),
        **({"fused": True} if cuda else {}),
    )
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=max(1, total_steps - warmup_steps),
        lr_min=config.min_lr,
        warmup_t=warmup_steps,
        warmup_lr_init=lr / 100,
        warmup_prefix=True,
        t_in_epochs=False,
    )
    mix = mix_rule(config, data.num_classes)
    if config.label_smoothing > 0:
        criterion: nn.Module = LabelSmoothingCrossEntropy(smoothing=config.label_smoothing)
    else:
        criterion = nn.CrossEntropyLoss()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    # On CUDA a per-step .item() would stall the launch queue; check the loss every few steps.
    check_every = 16 if cuda else 1
    generator = torch.Generator().manual_seed(config.seed)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast:
            return model(x)

    eval_batch = config.eval_batch_size or 2 * batch_size

    def knn_probe(val_features: torch.Tensor | None = None) -> float:
        from archbench.train.knn import extract_features, knn_accuracy

        train_features = extract_features(model, train_x, scale, shift, eval_batch, autocast, channels_last)
        if val_features is None:
            val_features = extract_features(model, val_x, scale, shift, eval_batch, autocast, channels_last)
        return knn_accuracy(train_features, train_y, val_features, val_y, data.num_classes)

    knn_init = knn_probe() if config.knn_at_init else None
    history: list[EpochResult] = []
    step = 0
    train_seconds = eval_seconds = 0.0
    images_seen = 0
    stopped = False
    started = time.perf_counter()
    # Blocks with a training term of their own (DynamicViT's keep-ratio loss) expose auxiliary_loss().
    auxiliary = [m for m in model.modules() if callable(getattr(m, "auxiliary_loss", None))]
    for epoch in range(1, epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        window = torch.zeros((), device=dev)  # losses since the last finiteness check
        epoch_images = 0
        for xb, yb in iterate_batches(train_x, train_y, batch_size, generator=generator, drop_last=True):
            x = torch.addcmul(shift, xb.float(), scale)  # uint8 -> normalised float32
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if mix is None:
                with autocast:
                    loss = criterion(model(x), yb)
            else:
                if len(x) % 2:  # mixing pairs images; only a dataset smaller than a batch hits this
                    x, yb = x[:-1], yb[:-1]
                loss = mix.loss(model, x, yb, forward)
            for module in auxiliary:  # set by the forward pass just run
                term = module.auxiliary_loss()
                loss = loss if term is None else loss + term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            step += 1
            scheduler.step_update(step)
            detached = loss.detach()
            loss_sum += detached
            window += detached
            epoch_images += len(x)
            if step % check_every == 0:
                _check_finite(window, epoch, step)
                window.zero_()
        _check_finite(window, epoch, step)
        if cuda:
            torch.cuda.synchronize(dev)
        epoch_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_seconds
        images_seen += epoch_images

        eval_start = time.perf_counter()
        # The evaluation keeps the classifier's input features: after the last epoch they are the
        # k-NN probe's val features, which then costs one pass over the training images, not two passes.
        val_loss, val_acc, val_features = _evaluate(model, val_x, val_y, scale, shift, eval_batch, autocast, channels_last)
        eval_seconds += time.perf_counter() - eval_start
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"validation loss is {val_loss} after epoch {epoch}", epoch=epoch, step=step)
        result = EpochResult(
            epoch=epoch,
            epochs=epochs,
            train_loss=float(loss_sum) / max(1, steps_per_epoch),
            val_loss=val_loss,
            val_acc=val_acc,
            lr=float(optimizer.param_groups[0]["lr"]),
            train_seconds=epoch_seconds,
            images_per_second=epoch_images / epoch_seconds if epoch_seconds > 0 else 0.0,
            elapsed_seconds=time.perf_counter() - started,
        )
        history.append(result)
        if on_epoch is not None and on_epoch(result) is True:
            stopped = epoch < epochs
            break

    eval_start = time.perf_counter()
    knn = knn_probe(val_features)
    eval_seconds += time.perf_counter() - eval_start
    last = history[-1]
    return TrainResult(
        val_acc=last.val_acc,
        val_loss=last.val_loss,
        best_val_acc=max(r.val_acc for r in history),
        epochs_run=len(history),
        stopped_early=stopped,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        images_per_second=images_seen / train_seconds if train_seconds > 0 else 0.0,
        train_images=images_seen,
        params=params,
        device=str(dev),
        peak_memory_mb=torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None,
        history=tuple(history),
        val_knn_acc=knn,
        val_knn_acc_init=knn_init,
        mix_rule=mix.used if mix is not None else "none",
    )


def _evaluate(
    model: nn.Module,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    batch_size: int,
    autocast: contextlib.AbstractContextManager,
    channels_last: bool,
) -> tuple[float, float, torch.Tensor | None]:
    """Mean cross-entropy (nats) and top-1 accuracy over the val split, one device sync at the end,
    and the classifier's input features of every val image (float32, (n, d), as
    :func:`archbench.train.knn.extract_features` takes them; None for a model without a classifier)."""
    from archbench.train.knn import classifier_features

    model.eval()
    loss_sum = torch.zeros((), device=val_x.device, dtype=torch.float64)
    correct = torch.zeros((), device=val_x.device, dtype=torch.int64)
    # A model without a classifier collects nothing here; the k-NN probe says so after training.
    with classifier_features(model, required=False) as captured, torch.inference_mode():
        for xb, yb in iterate_batches(val_x, val_y, batch_size):
            x = torch.addcmul(shift, xb.float(), scale)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(x)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
            correct += (logits.argmax(dim=1) == yb).sum()
    n = max(1, len(val_y))
    return float(loss_sum) / n, int(correct) / n, torch.cat(captured) if captured else None


# ---- helpers ------------------------------------------------------------------------------------
def _model(arch: ArchSpec | nn.Module, data: Dataset) -> nn.Module:
    if isinstance(arch, nn.Module):
        return arch
    from archbench.builder import build

    if arch.input.in_chans != data.in_chans:
        arch = replace(arch, input=replace(arch.input, in_chans=data.in_chans))
    return build(arch, img_size=data.img_size, num_classes=data.num_classes)


def _affine(data: Dataset, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # The same fused normalisation as Dataset.normalize, with the constants made once per run.
    mean = torch.tensor(data.mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


def _check_finite(window: torch.Tensor, epoch: int, step: int) -> None:
    value = float(window)
    if not math.isfinite(value):
        raise TrainingDiverged(f"training loss became {value} by step {step} (epoch {epoch})", epoch=epoch, step=step)


def _check_data(data: Dataset) -> None:
    # The settings check themselves (TrainConfig); only the data can still be unfit.
    if len(data.train_y) < 2 or len(data.val_y) < 1:
        raise UserError(f"dataset '{data.name}' is too small to train ({len(data.train_y)} train, {len(data.val_y)} val)")


@contextlib.contextmanager
def _run_settings(dev: torch.device, threads: int | None, seed: int) -> Iterator[None]:
    """Seed every RNG the run touches and set threads / cuDNN, restoring the caller's state after."""
    previous_threads = torch.get_num_threads()
    previous_benchmark = torch.backends.cudnn.benchmark
    numpy_state = np.random.get_state()  # timm's Mixup draws from numpy's global RNG
    devices = [dev.index] if dev.type == "cuda" else []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: autotuning pays off after a few steps
            torch.cuda.reset_peak_memory_stats(dev)
        np.random.seed(seed % 2**32)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cudnn.benchmark = previous_benchmark
        np.random.set_state(numpy_state)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
