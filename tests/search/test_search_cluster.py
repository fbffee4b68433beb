"""`--ray-address`: a search joins a Ray cluster started with `ray start --head` (here one node on
this machine, on free ports, in a temp folder of its own) instead of starting a local Ray.

The cluster is stopped through its own process group and temp folder, never with `ray stop`,
which would kill every Ray on the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from search_helpers import TAG, TINY_SPACE, free_port, new_tag, short_tempdir, sweep

pytestmark = pytest.mark.slow  # a Ray head plus searches joining it: ~60 s for the module

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, Path]]:
    """`ray start --head --block` on free ports; yields its address and temp folder, and stops it
    (only it) after."""
    temp = short_tempdir("abc")
    tag = new_tag("abc")
    port = free_port()
    command = [
        RAY, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
        "--temp-dir", str(temp), "--disable-usage-stats",
        # A port with a fixed default (52365) would clash with another cluster on this machine.
        "--dashboard-agent-listen-port", str(free_port()),
    ]
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, TAG: tag}
    log = open(temp / "ray-start.log", "w")
    head = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (temp / "ray_current_cluster").exists():  # written once the head is up
            assert head.poll() is None, (temp / "ray-start.log").read_text()
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        # The address as Ray resolves it (the node's IP, not 127.0.0.1, which Ray rewrites).
        yield (temp / "ray_current_cluster").read_text().strip(), temp
    finally:
        for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 5)):
            try:
                os.killpg(head.pid, sig)  # `ray start` and the daemons it spawned share its group
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        sweep(f"{TAG}={tag}")  # workers run in sessions of their own: found by the inherited tag
        sweep(str(temp))
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_search_joins_the_cluster_given_by_ray_address(ray_head, driver, tmp_path):
    address, head_temp = ray_head
    run = tmp_path / "run"
    search = driver(
        "search", "--space", str(TINY_SPACE), "--dataset", "digits", "--trials", "2", "--epochs", "1", "--run-dir", str(run), "--no-live",
        "--ray-address", address, "--objectives", "val_acc:max,latency_ms:min",
    )
    code, out, err = search.run(timeout=300)
    assert code == 0, err
    df = pd.read_parquet(run / "trials")
    assert sorted(df["status"]) == ["ok", "ok"] and (df["latency_ms_median"] > 0).all()  # the node's lease too
    assert json.loads((run / "manifest.json").read_text())["options"]["ray_address"] == address
    # The trials ran on the cluster's node (its workers logged there); the driver started no Ray of its own.
    assert list(head_temp.glob("session_*/logs/worker-*"))
    assert not list(search.ray_tmp.glob("ray/session_*"))


def test_ray_address_from_the_environment(ray_head, driver, tmp_path):
    address, _ = ray_head
    run = tmp_path / "run"
    search = driver(
        "search", "--space", str(TINY_SPACE), "--dataset", "digits", "--trials", "1", "--epochs", "1", "--run-dir", str(run), "--no-live",
        env={"RAY_ADDRESS": address},
    )
    code, out, err = search.run(timeout=300)
    assert code == 0, err
    assert list(pd.read_parquet(run / "trials")["status"]) == ["ok"]
    assert not list(search.ray_tmp.glob("ray/session_*"))


def test_an_unreachable_ray_address_is_a_one_line_error(driver, tmp_path):
    run = tmp_path / "run"
    code, out, err = driver(
        "search", "--space", str(TINY_SPACE), "--dataset", "digits", "--trials", "1", "--run-dir", str(run), "--no-live",
        "--ray-address", f"127.0.0.1:{free_port()}",
    ).run(timeout=300)
    assert code == 2, (out, err)
    assert err.strip().startswith("archbench: error: --ray-address: cannot join Ray at 127.0.0.1:") and len(err.strip().splitlines()) == 1
    assert not run.exists()  # nothing left behind: the same command can simply be run again
