"""Fixtures of the search tests: options of a cheap tiny search (the shared Ray and the subprocess
drivers are in tests/conftest.py: the fidelity tests use them too)."""
from __future__ import annotations

from pathlib import Path

import pytest
from search_helpers import TINY_SPACE


@pytest.fixture
def tiny_options(tmp_path: Path):
    """SearchOptions of a cheap search of the tiny test space (1 epoch, no proxy scaling)."""
    from archbench.search.options import SearchOptions
    from archbench.train import TrainConfig

    base = SearchOptions(
        space=str(TINY_SPACE),
        trials=3,
        train=TrainConfig(dataset="digits", epochs=1, batch_size=128, proxy_img_size=32, proxy_width_mult=1.0, proxy_depth_mult=1.0, seed=0),
        concurrency=2,
        run_dir=str(tmp_path / "run"),
    )

    def make(**changes):
        return base.changed(**changes)  # flat names: trials=…, epochs=…, seed=…

    return make


