"""Proxy training: in-memory datasets (digits, Fashion-MNIST, CIFAR, image folders), architectures
scaled down for cheap training, their settings (TrainConfig), and the timm-recipe training loop that
scores them on a held-out split.
"""
from __future__ import annotations

from archbench.train.config import TrainConfig
from archbench.train.data import Dataset, DatasetError, iterate_batches, load_dataset, num_batches
from archbench.train.loop import (
    EpochResult,
    TrainingDiverged,
    TrainingError,
    TrainingOutOfMemory,
    TrainResult,
    train_proxy,
)
from archbench.train.proxy import scale_arch, total_stride

__all__ = [
    "Dataset",
    "DatasetError",
    "EpochResult",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingError",
    "TrainingOutOfMemory",
    "iterate_batches",
    "load_dataset",
    "num_batches",
    "scale_arch",
    "total_stride",
    "train_proxy",
]
