"""What else ran on the machine while a latency was timed: other processes' CPU use on the cores
this process may run on (Linux ``/proc/stat``), so a figure carries the evidence of its conditions.

archbench's own trials are kept apart by the device lease; this covers everything else (a build,
a browser, another user's job), which can make a CPU latency several times slower unseen.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["CONTENDED_MIN_CORES", "MachineLoad", "watch_load"]

# Below half a core of other work on average, the noise of an idle desktop or a CI runner's agent,
# a figure is not marked: a mark must mean something a user should act on.
CONTENDED_MIN_CORES = 0.5
_PROC_STAT = Path("/proc/stat")
_IDLE_FIELDS = (3, 4)  # idle and iowait: the rest of a cpuN line's first eight fields is busy time


@dataclass(frozen=True)
class MachineLoad:
    """Other processes' average busy cores during a measurement, out of the cores it could use.

    ``other_cores`` is None where it cannot be read (not Linux). ``loadavg`` is the 1-minute load
    average at the end, for the record.
    """

    other_cores: float | None
    cores: int
    loadavg: float | None

    def contended(self, threads: int) -> bool:
        """Did other work compete with the measurement? Other processes kept at least
        CONTENDED_MIN_CORES busy and more than half the cores the measurement left free
        (2 cores, 1 thread: more than half a core; 16 cores, 1 thread: more than 7.5)."""
        if self.other_cores is None:
            return False
        free = max(self.cores - threads, 0)
        return self.other_cores >= CONTENDED_MIN_CORES and self.other_cores > free / 2


def _busy_seconds(cpus: set[int]) -> float | None:
    """CPU seconds spent busy so far on ``cpus`` by everything on the machine, or None off Linux."""
    try:
        lines = _PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields[:8]]
        busy += sum(v for i, v in enumerate(values) if i not in _IDLE_FIELDS)
    return busy / ticks


@contextmanager
def watch_load() -> Iterator[Callable[[], MachineLoad]]:
    """Watch the machine while the body runs; call what it yields afterwards for the load.

    Example:
        >>> with watch_load() as load:
        ...     _ = sum(range(10**6))
        >>> load().cores >= 1
        True
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    start_wall, start_own, start_busy = time.perf_counter(), time.process_time(), _busy_seconds(cpus)
    result: list[MachineLoad] = []

    def load() -> MachineLoad:
        return result[0]

    yield load
    wall, own, busy = time.perf_counter() - start_wall, time.process_time() - start_own, _busy_seconds(cpus)
    other = None
    if start_busy is not None and busy is not None and wall > 0:
        # Clock ticks are 10 ms: a short window reads a little high or low, never below zero.
        other = round(max(busy - start_busy - own, 0.0) / wall, 2)
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result.append(MachineLoad(other_cores=other, cores=len(cpus), loadavg=loadavg))
