"""TrainConfig: one object for every proxy-training setting, its one-line checks naming the flag,
the single mapping onto TrialRecord columns, and cheap variants (one fidelity from another)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from archbench.store import TrialRecord
from archbench.train import TrainConfig


def test_record_fields_are_the_training_columns():
    config = TrainConfig(dataset="digits", epochs=3, batch_size=32, lr=1e-3, proxy_img_size=16, proxy_width_mult=0.5, proxy_depth_mult=0.5, seed=4)
    assert config.record_fields() == {
        "dataset": "digits",
        "proxy_img_size": 16,
        "proxy_width_mult": 0.5,
        "proxy_depth_mult": 0.5,
        "proxy_epochs": 3,
        "proxy_batch_size": 32,
        "proxy_lr": 1e-3,
        "proxy_train_images": 4000,
        "seed": 4,
    }
    record = TrialRecord(run="r", trial_id="00002", status="ok", **config.for_trial(2).record_fields())
    assert record.seed == 6 and record.proxy_epochs == 3


def test_a_fidelity_is_a_replace_away_and_still_checked():
    base = TrainConfig()
    low = replace(base, epochs=1, proxy_img_size=16)
    assert (low.epochs, low.proxy_img_size, low.lr) == (1, 16, base.lr)
    with pytest.raises(ValueError, match="--epochs must be an integer >= 1"):
        replace(base, epochs=0)


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"epochs": 1.5}, "--epochs must be an integer >= 1"),
        ({"batch_size": 0}, "--batch-size must be an integer >= 1"),
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"mixup": -1.0}, "--mixup and --cutmix"),
        ({"cutmix": 1.0, "batch_size": 33}, "--batch-size: Mixup/CutMix mix pairs of images"),
        ({"proxy_img_size": 4}, "--proxy-img-size must be >= 8"),
        ({"train_images": 5}, "--train-images must be an integer >= 10"),
        ({"proxy_width_mult": 2.0}, "--proxy-width-mult must be in (0, 1]"),
        ({"proxy_depth_mult": 0.0}, "--proxy-depth-mult must be in (0, 1]"),
        ({"device": "tpu"}, "--device must be auto, cpu or cuda"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
        ({"threads": 0}, "threads must be >= 1"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_option(changes, needle):
    with pytest.raises(ValueError) as info:
        TrainConfig(**changes)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_device_auto_and_explicit():
    assert TrainConfig(device="cpu").resolved_device() == "cpu"
    assert TrainConfig(device="cuda:1").resolved_device() == "cuda:1"
    assert TrainConfig().resolved_device() in ("cpu", "cuda")
