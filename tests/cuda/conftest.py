"""Fixtures of the CUDA tests (helpers in tests/cuda_helpers.py).

Every test here is marked ``cuda``; the root conftest skips them (reason: needs a CUDA device) on a
machine without one, and the autouse fixture below does the same should the marker be dropped.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


@pytest.fixture(scope="module")
def digits():
    from archbench.train import load_dataset

    return load_dataset("digits", img_size=16, seed=0)

