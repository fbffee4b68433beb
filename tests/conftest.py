"""Shared test fixtures: quiet libraries, small deterministic torch settings, paths; one local Ray
shared by in-process searches and studies, and subprocess drivers swept at the end of their test."""
from __future__ import annotations

import os
import shutil
import signal
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch
from search_helpers import TAG, Driver, new_tag, short_tempdir, sweep

REPO = Path(__file__).resolve().parents[1]

warnings.filterwarnings("ignore", category=FutureWarning)
torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # CUDA tests skip cleanly (with a reason) on CPU-only machines.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Callable[..., Driver]]:
    """Factory of Driver objects; every Ray they started is swept at the end of the test."""
    made: list[Driver] = []
    ray_tmp = short_tempdir("abt")
    tag = new_tag("abt")

    def make(*args: str, env: dict[str, str] | None = None) -> Driver:
        d = Driver(list(args), ray_tmp=ray_tmp, tag=tag, env=env)
        made.append(d)
        return d

    yield make
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.kill_group(signal.SIGKILL)
            d.proc.communicate()
    sweep(f"{TAG}={tag}")
    sweep(str(ray_tmp))
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray (2 CPUs, no dashboard) for every in-process search test; run_search joins it."""
    import ray

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tag = new_tag("abs")
    os.environ[TAG] = tag  # Ray's daemons and workers inherit it: the sweep finds them by it
    temp = short_tempdir("abs")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        namespace="archbench",
        _temp_dir=str(temp),
    )
    yield
    ray.shutdown()
    sweep(f"{TAG}={tag}")
    sweep(str(temp))
    shutil.rmtree(temp, ignore_errors=True)
