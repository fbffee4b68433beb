"""Proxy training: in-memory datasets (digits, Fashion-MNIST, CIFAR, image folders), architectures
scaled down for cheap training, their settings (TrainConfig), the timm-recipe training loop that
scores them on a held-out split, and the zero-cost scores of a proxy at initialisation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from archbench._lazy import lazy_attributes

# Resolved on first use: option validation (TrainConfig) must not pay for torch and timm, so a bad
# flag is refused in well under a second (issue 12).
_LAZY = {
    "TrainConfig": "archbench.train.config",
    "Dataset": "archbench.train.data",
    "DatasetError": "archbench.train.data",
    "iterate_batches": "archbench.train.data",
    "load_dataset": "archbench.train.data",
    "num_batches": "archbench.train.data",
    "EpochResult": "archbench.train.loop",
    "TrainingDiverged": "archbench.train.loop",
    "TrainingError": "archbench.train.loop",
    "TrainingOutOfMemory": "archbench.train.loop",
    "TrainResult": "archbench.train.loop",
    "train_proxy": "archbench.train.loop",
    "scale_arch": "archbench.train.proxy",
    "total_stride": "archbench.train.proxy",
    "zero_cost_of": "archbench.train.zero_cost",
    "zero_cost_scores": "archbench.train.zero_cost",
}

if TYPE_CHECKING:
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


__getattr__ = lazy_attributes("archbench.train", _LAZY, globals())
