"""Fixtures of the search tests: one local Ray shared by the in-process tests (run_search joins an
initialised Ray), subprocess drivers swept at the end, and options of a cheap tiny search."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Callable, Iterator

import pytest
from search_helpers import TAG, TINY_SPACE, Driver, new_tag, short_tempdir, sweep


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


@pytest.fixture
def tiny_options(tmp_path: Path):
    """SearchOptions of a cheap search of the tiny test space (1 epoch, no proxy scaling)."""
    from archbench.search.options import SearchOptions
    from archbench.train import TrainConfig

    base = SearchOptions(
        space=str(TINY_SPACE),
        trials=3,
        train=TrainConfig(epochs=1, batch_size=128, proxy_img_size=32, proxy_width_mult=1.0, proxy_depth_mult=1.0, seed=0),
        concurrency=2,
        run_dir=str(tmp_path / "run"),
    )

    def make(**changes):
        return base.changed(**changes)  # flat names: trials=…, epochs=…, seed=…

    return make


