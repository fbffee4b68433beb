"""Proxy training: in-memory datasets (digits, Fashion-MNIST, CIFAR, image folders), architectures
scaled down for cheap training, their settings (TrainConfig), the timm-recipe training loop that
scores them on a held-out split, and the zero-cost scores of a proxy at initialisation.
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
from archbench.train.zero_cost import zero_cost_of, zero_cost_scores

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
    "zero_cost_of",
    "zero_cost_scores",
]
