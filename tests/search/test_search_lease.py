"""The DeviceLease actor that isolates latency measurements: an exclusive holder waits for shared
holders, holds new ones back while it waits (writer preference), and releases are idempotent."""
from __future__ import annotations

import time

import pytest
import ray

from archbench.search import lease as leases

pytestmark = pytest.mark.slow  # a local Ray (shared with the other search tests)


def pending(ref: ray.ObjectRef, wait_s: float = 1.0) -> bool:
    ready, _ = ray.wait([ref], timeout=wait_s)
    return not ready


@pytest.fixture
def lease(ray_local):
    handle = leases.DeviceLease.options(max_concurrency=100).remote()
    yield handle
    ray.kill(handle)


def test_exclusive_waits_for_a_shared_holder(lease):
    ray.get(lease.acquire_shared.remote("train-a"))
    exclusive = lease.acquire_exclusive.remote("latency-b")
    assert pending(exclusive), "the latency measurement started while a training epoch held the device"
    assert ray.get(lease.state.remote()) == {"readers": ["train-a"], "writer": None, "writers_waiting": 1}
    ray.get(lease.release.remote("train-a"))
    ray.get(exclusive, timeout=10)
    assert ray.get(lease.state.remote())["writer"] == "latency-b"


def test_a_waiting_exclusive_holds_new_shared_holders_back(lease):
    ray.get(lease.acquire_shared.remote("train-a"))
    exclusive = lease.acquire_exclusive.remote("latency-b")
    assert pending(exclusive)
    late_reader = lease.acquire_shared.remote("train-c")
    assert pending(late_reader), "a new epoch overtook the waiting measurement"
    ray.get(lease.release.remote("train-a"))
    ray.get(exclusive, timeout=10)
    assert pending(late_reader, 0.5), "an epoch started during the measurement"
    ray.get(lease.release.remote("latency-b"))
    ray.get(late_reader, timeout=10)
    assert ray.get(lease.state.remote()) == {"readers": ["train-c"], "writer": None, "writers_waiting": 0}


def test_shared_holders_share(lease):
    ray.get([lease.acquire_shared.remote(name) for name in ("a", "b", "c")], timeout=10)
    assert ray.get(lease.state.remote())["readers"] == ["a", "b", "c"]


def test_release_is_idempotent_and_frees_a_dead_holders_lease(lease):
    ray.get(lease.acquire_exclusive.remote("trial-7"))
    ray.get(lease.release.remote("trial-7"))
    ray.get(lease.release.remote("trial-7"))  # the driver frees it again after the trial ended
    ray.get(lease.release.remote("never-held"))
    ray.get(lease.acquire_exclusive.remote("trial-8"), timeout=10)


def test_a_holder_upgrades_its_own_shared_lease(lease):
    """A trial holding a shared lease can take the exclusive one without waiting for itself."""
    ray.get(lease.acquire_shared.remote("trial-1"))
    ray.get(lease.acquire_exclusive.remote("trial-1"), timeout=10)
    assert ray.get(lease.state.remote()) == {"readers": [], "writer": "trial-1", "writers_waiting": 0}


def test_device_hold_and_no_lease(lease):
    """DeviceHold, the trials' own way of taking the lease, is what is tested here."""
    with leases.DeviceHold(None, "x").exclusive(), leases.DeviceHold(None, "y").shared():
        pass  # without a lease (a node that joined late) they do nothing
    with leases.DeviceHold(lease, "t").shared():
        assert ray.get(lease.state.remote())["readers"] == ["t"]
    with leases.DeviceHold(lease, "m").exclusive():
        assert ray.get(lease.state.remote())["writer"] == "m"
    assert ray.get(lease.state.remote()) == {"readers": [], "writer": None, "writers_waiting": 0}
    hold = leases.DeviceHold(lease, "e")
    hold.begin_shared()
    assert ray.get(lease.state.remote())["readers"] == ["e"]
    hold.end_shared()  # between epochs: a waiting measurement may go first
    hold.end_shared()  # a second end is a no-op
    assert ray.get(lease.state.remote()) == {"readers": [], "writer": None, "writers_waiting": 0}
    assert [kind for kind, *_ in hold.windows] == ["shared"]


@ray.remote(num_cpus=0)
def measure_while_epochs_run(run_id: str) -> tuple[float, float]:
    """In a worker, as a trial does it: find this node's lease and time under the exclusive one."""
    lease = leases.lease_for_this_node(run_id)
    assert lease is not None
    asked = time.monotonic()
    with leases.DeviceHold(lease, f"{run_id}:latency").exclusive():
        got = time.monotonic()
    return asked, got


def test_a_worker_finds_its_nodes_lease_and_waits_for_the_epoch(ray_local):
    run_id = f"leasetest{time.monotonic_ns()}"
    handles = leases.create_leases(run_id)
    try:
        assert len(handles) == len([n for n in ray.nodes() if n["Alive"]]) == 1
        ray.get(handles[0].acquire_shared.remote(f"{run_id}:epoch"))
        measured = measure_while_epochs_run.remote(run_id)
        assert pending(measured, 2.0)
        released = time.monotonic()
        ray.get(handles[0].release.remote(f"{run_id}:epoch"))
        asked, got = ray.get(measured, timeout=30)
        assert got >= released > asked
        assert leases.create_leases(run_id)[0]._actor_id == handles[0]._actor_id  # one per node and run
    finally:
        for handle in handles:
            ray.kill(handle)
