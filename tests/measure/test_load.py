"""The machine's load during a latency measurement: other processes' busy cores, read from
/proc/stat, and the rule that marks a figure contended (issue 12: 3.6-4.4x slower, unmarked)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from archbench.measure import measure_latency
from archbench.measure.load import MachineLoad, watch_load

linux_only = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="other processes' CPU time is read from Linux /proc/stat")


@pytest.mark.parametrize(
    ("other", "cores", "threads", "contended"),
    [
        (None, 2, 1, False),  # not measurable: never marked
        (0.1, 2, 2, False),  # an idle machine's noise
        (0.49, 2, 2, False),
        (0.5, 2, 2, True),  # half a core taken from a measurement that wanted both
        (0.6, 2, 1, True),  # more than half the free core
        (0.4, 2, 1, False),
        (1.0, 16, 1, False),  # one busy process beside a 1-thread timing on 16 cores
        (7.6, 16, 1, True),
        (3.0, 16, 16, True),
    ],
)
def test_a_figure_is_contended_when_other_work_takes_half_the_free_cores(other, cores, threads, contended) -> None:
    assert MachineLoad(other_cores=other, cores=cores, loadavg=None).contended(threads) is contended


@linux_only
def test_a_busy_process_beside_the_measurement_is_seen() -> None:
    """A spinning process is counted as other work; the measuring process itself sleeps (its own
    CPU time is never counted, whatever it does)."""
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        with watch_load() as load:
            time.sleep(1.5)
    finally:
        spinner.kill()
        spinner.wait()
    seen = load()
    # The spinner alone keeps a core busy whenever it runs; anything else running only adds to it.
    assert seen.other_cores is not None and seen.other_cores >= 0.5, seen
    assert seen.cores >= 1 and seen.contended(threads=seen.cores)


def test_a_latency_carries_the_load_it_was_measured_under() -> None:
    lat = measure_latency(torch.nn.Linear(4, 4), 4, in_chans=1, threads=1, min_seconds=0.05, max_seconds=0.5)
    data = lat.to_dict()
    assert {"other_cores", "contended", "loadavg"} <= set(data)
    assert isinstance(lat.contended, bool)
    if Path("/proc/stat").exists():
        assert lat.other_cores is not None and lat.other_cores >= 0
        assert lat.contended == MachineLoad(lat.other_cores, len(os.sched_getaffinity(0)), None).contended(lat.threads)
