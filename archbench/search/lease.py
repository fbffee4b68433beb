"""Latency isolation: a readers-writer lease per machine, held by a small Ray actor.

Training epochs hold a shared lease; a latency measurement takes the exclusive lease, which waits
for running epochs to end and holds new ones back, so no figure is timed on a loaded device. A trial
takes both through its DeviceHold.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Iterator

import ray
import ray.util.scheduling_strategies

ISOLATION_METHOD = (
    "exclusive device lease: one readers-writer lock actor per node; training epochs hold shared "
    "leases, a latency measurement waits for running epochs to finish and blocks new ones"
)


@ray.remote(num_cpus=0)
class DeviceLease:
    """Writer-preferring readers-writer lock (an asyncio actor, so waiting callers block no one).

    Holders are named (the trial id), so releases are idempotent and the driver can free the
    leases of a trial that died without releasing them.
    """

    def __init__(self) -> None:
        self._readers: set[str] = set()
        self._writer: str | None = None
        self._writers_waiting = 0
        self._changed = asyncio.Condition()

    async def acquire_shared(self, holder: str) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._writer is None and self._writers_waiting == 0)
            self._readers.add(holder)

    async def acquire_exclusive(self, holder: str) -> None:
        async with self._changed:
            self._writers_waiting += 1
            await self._changed.wait_for(lambda: self._writer is None and not (self._readers - {holder}))
            self._writers_waiting -= 1
            self._readers.discard(holder)
            self._writer = holder

    async def release(self, holder: str) -> None:
        async with self._changed:
            self._readers.discard(holder)
            if self._writer == holder:
                self._writer = None
            self._changed.notify_all()

    async def state(self) -> dict[str, object]:
        return {"readers": sorted(self._readers), "writer": self._writer, "writers_waiting": self._writers_waiting}


def _name(run_id: str, node_id: str) -> str:
    return f"archbench-lease-{run_id}-{node_id[:16]}"


def create_leases(run_id: str) -> list[ray.actor.ActorHandle]:
    """One lease actor per alive node, owned by the driver so it lives exactly as long as the run."""
    handles = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        handles.append(
            DeviceLease.options(
                name=_name(run_id, node["NodeID"]),
                namespace="archbench",
                get_if_exists=True,
                scheduling_strategy=strategy,
                max_concurrency=1000,
            ).remote()
        )
    return handles


def release_everywhere(leases: list[ray.actor.ActorHandle], holder: str) -> None:
    """Free whatever lease ``holder`` (a trial that ended, maybe abruptly) still holds on any node."""
    for handle in leases:
        handle.release.remote(holder)


def lease_for_this_node(run_id: str) -> ray.actor.ActorHandle | None:
    """The lease of the node this trial runs on; None if the node joined after the run started."""
    node_id = ray.get_runtime_context().get_node_id()
    try:
        return ray.get_actor(_name(run_id, node_id), namespace="archbench")
    except ValueError:
        return None


class DeviceHold:
    """A trial's hold on its node's DeviceLease, with the wall-clock windows it held it.

    Each window is taken inside the held span (after acquiring, before releasing), so windows of
    different trials overlap only if the lease failed to exclude; a trial stores them in its record
    (``extra_json.lease_windows``) as evidence. Without a lease (a node that joined after the run
    started, or a run that times nothing) every method is a no-op.

    A trial of run ``run_id`` makes its hold with ``DeviceHold(lease_for_this_node(run_id),
    holder=f"{run_id}:{trial_id}")``, trains inside ``hold.shared()`` and times its latency inside
    ``hold.exclusive()``. Without a lease, as here, the holds only run their body:

    Example:
        >>> hold = DeviceHold(None, holder="demo:00007")
        >>> with hold.exclusive():
        ...     print("timing the latency")
        timing the latency
        >>> hold.windows
        []
    """

    def __init__(self, lease: ray.actor.ActorHandle | None, holder: str) -> None:
        self.lease = lease
        self.holder = holder
        self.windows: list[list[Any]] = []
        self._since: float | None = None

    def begin_shared(self) -> None:
        """Take the shared lease (waits while a measurement holds or awaits the exclusive one)."""
        if self.lease is not None:
            ray.get(self.lease.acquire_shared.remote(self.holder))
            self._since = time.time()

    def end_shared(self) -> None:
        if self.lease is not None and self._since is not None:
            self.windows.append(["shared", self._since, time.time()])
            self._since = None
            self._release()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Load the device alongside other trials; a latency measurement waits meanwhile."""
        self.begin_shared()
        try:
            yield
        finally:
            self.end_shared()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the device alone: running epochs end first, new ones wait."""
        if self.lease is None:
            yield
            return
        ray.get(self.lease.acquire_exclusive.remote(self.holder))
        since = time.time()
        try:
            yield
        finally:
            self.windows.append(["exclusive", since, time.time()])
            self._release()

    def _release(self) -> None:
        assert self.lease is not None
        ray.get(self.lease.release.remote(self.holder))
