"""Proxy training: learns digits, is deterministic, stops on request, and fails as data."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archbench import ArchSpec
from archbench.store import TrialRecord
from archbench.train import (
    EpochResult,
    TrainConfig,
    TrainingDiverged,
    TrainingOutOfMemory,
    load_dataset,
    train_proxy,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", img_size=16, seed=0)


def tiny_pyramid(img_size: int = 224, num_classes: int = 1000) -> ArchSpec:
    """~0.1M parameters: a 4×4 patch stem and two downsamplings take 16 px to a 1×1 map."""
    def stage(dim, kernel, down):
        return {"depth": 1, "dim": dim, "block": {"type": "convnext", "params": {"kernel": kernel}},
                "downsample": {"type": "conv"} if down else None}

    return ArchSpec.from_dict({
        "name": "tiny",
        "layout": "pyramid",
        "input": {"img_size": img_size, "num_classes": num_classes},
        "stem": {"type": "patchify", "params": {"patch_size": 4, "norm": "layernorm"}},
        "stages": [stage(32, 3, False), stage(64, 1, True), stage(64, 1, True)],
        "head": {"type": "linear"},
    })


FAST = dict(batch_size=32, lr=3e-3, warmup_epochs=0.2, threads=1, device="cpu")


def test_two_epochs_on_digits_learn_well_above_chance(digits):
    seen: list[EpochResult] = []
    # The spec says 224 px / 1000 classes: the loop builds it at the dataset's 16 px / 10 classes.
    result = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=2, seed=0, **FAST), on_epoch=seen.append)
    assert result.val_acc > 0.5  # chance is 0.1
    assert result.epochs_run == 2 and not result.stopped_early
    assert [e.epoch for e in seen] == [1, 2] and seen == list(result.history)
    assert seen[1].val_loss < seen[0].val_loss < math.log(10)
    assert result.best_val_acc == max(e.val_acc for e in seen)
    steps = len(digits.train_y) // 32
    assert result.train_images == 2 * steps * 32
    assert result.train_seconds > 0 and result.images_per_second == pytest.approx(result.train_images / result.train_seconds)
    assert result.eval_seconds > 0 and result.device == "cpu" and result.peak_memory_mb is None
    assert 50_000 < result.params < 200_000
    # Cosine decays to the floor by the last step.
    assert seen[-1].lr == pytest.approx(1e-6)
    # The fields drop straight into a TrialRecord.
    record = TrialRecord(run="r", trial_id="1", status="ok", **result.record_fields())
    assert record.val_acc_history == [e.val_acc for e in seen] and record.proxy_params == result.params
    assert record.train_loss_sum == pytest.approx(seen[0].train_loss + seen[1].train_loss)


def test_same_seed_same_result_and_global_state_untouched(digits):
    threads = torch.get_num_threads()
    rng = torch.get_rng_state()
    a = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, seed=7, **FAST))
    b = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, seed=7, **FAST))
    assert a.val_acc == b.val_acc and a.val_loss == b.val_loss
    assert a.history[0].train_loss == b.history[0].train_loss
    c = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, seed=8, **FAST))
    assert c.val_loss != a.val_loss
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)


def test_on_epoch_true_stops_training(digits):
    result = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=5, seed=0, **FAST), on_epoch=lambda e: e.epoch >= 1)
    assert result.epochs_run == 1 and result.stopped_early


class NaNAfter(nn.Module):
    """A linear classifier whose output turns NaN from its ``after``-th training call on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 10)
        self.after = after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = self.fc(x.flatten(1))
        return out * float("nan") if self.calls >= self.after else out


def test_nan_loss_raises_diverged(digits):
    with pytest.raises(TrainingDiverged, match="training loss became nan by step 5") as info:
        train_proxy(NaNAfter(after=5), digits, TrainConfig(epochs=2, seed=0, **FAST))
    assert info.value.step == 5 and info.value.epoch == 1


class OOMModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")


def test_out_of_memory_becomes_a_clear_error(digits):
    with pytest.raises(TrainingOutOfMemory, match=r"out of memory on cpu at batch size 32: CUDA out of memory. Tried to allocate 2.00 GiB$"):
        train_proxy(OOMModel(), digits, TrainConfig(epochs=1, seed=0, **FAST))


def test_mixup_cutmix_train_and_need_even_batches(digits):
    result = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, seed=0, mixup=0.8, cutmix=1.0, label_smoothing=0.1, **FAST))
    assert math.isfinite(result.val_loss) and 0.0 <= result.val_acc <= 1.0
    with pytest.raises(ValueError, match="batch_size must be even"):
        train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, mixup=0.8, batch_size=33))


def test_bad_arguments(digits):
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=0))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=1, device="cuda"))


@pytest.mark.cuda
def test_cuda_bf16_channels_last(digits):
    result = train_proxy(tiny_pyramid(), digits, TrainConfig(epochs=2, seed=0, device="cuda", batch_size=32, lr=3e-3, warmup_epochs=0.2))
    assert result.val_acc > 0.5 and result.device.startswith("cuda") and result.peak_memory_mb > 0
