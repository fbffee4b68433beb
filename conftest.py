"""Docstring examples (`pytest --doctest-modules archbench`, and tests/core/test_doctests.py) run
with ``archbench`` and ``torch`` imported, as a user's session would have them, a throw-away cache
folder, and these names, which the examples that use them mention:

- ``tmp``: an empty temporary folder of the example's own (it writes its run folders there);
- ``manifest``: a search run's Manifest (run_id ``demo``, objectives val_acc:max and macs:min);
- ``demo_runs``: a folder holding two tiny finished searches, ``nsga2-seed0`` and ``random-seed0``
  (three trials each, written with ``write_trial`` beside a manifest written by ``RunFolder``).

Layers an example registers are unregistered after it, so examples leave the registry as they found it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# val_acc and macs of the demo runs' trials: in nsga2-seed0, 00000 and 00001 form the front.
DEMO_TRIALS = {
    "nsga2-seed0": ("nsga2", [(0.91, 1.2e9), (0.85, 0.6e9), (0.80, 1.5e9)]),
    "random-seed0": ("random", [(0.88, 1.4e9), (0.70, 0.9e9), (0.83, 2.0e9)]),
}


def demo_manifest(run_id: str = "demo", sampler: str = "nsga2") -> Any:
    """A search run's manifest, as `archbench search` writes it (trimmed to the required fields)."""
    from archbench.store import Manifest

    return Manifest(
        run_id=run_id,
        created_at="2026-01-01T00:00:00+00:00",
        command="archbench search",
        options={"sampler": sampler, "trials": 3},
        space={"name": "tiny_cpu", "target": {"img_size": 32, "num_classes": 10}},
        objectives=[{"name": "val_acc", "direction": "max", "metric": "val_acc"}, {"name": "macs", "direction": "min", "metric": "macs"}],
        seed=0,
        schema_version=1,
        versions={"archbench": "0.1.0"},
        hardware={"cpu": "demo"},
        latency_isolation="none",
    )


def write_demo_runs(root: Path) -> Path:
    """The runs of ``demo_runs`` under ``root`` (returned)."""
    from archbench.store import RunFolder, TrialRecord, write_trial

    for name, (sampler, trials) in DEMO_TRIALS.items():
        folder = RunFolder.create(root / name)
        folder.write_manifest(demo_manifest(name, sampler))
        for i, (val_acc, macs) in enumerate(trials):
            record = TrialRecord(run=name, trial_id=f"{i:05d}", status="ok", sampler=sampler, space="tiny_cpu", val_acc=val_acc, macs=int(macs))
            write_trial(folder.path, record)
    return root


@pytest.fixture(scope="session")
def _demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_runs(tmp_path_factory.mktemp("demo_runs"))


@pytest.fixture
def archbench_doctest_globals(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, _demo_runs: Path
) -> Iterator[Callable[[], dict[str, Any]]]:
    """Makes the names above for one docstring's examples (a fresh ``tmp`` each call); sets the
    cache folder and restores the layer registry when the test ends."""
    import torch

    import archbench
    import archbench.space
    from archbench import registry

    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    for kind in registry.KINDS:
        registry.names(kind)  # the families register on first use: load them before the snapshot
    saved = {kind: dict(table) for kind, table in registry._REGISTRY.items()}

    def make() -> dict[str, Any]:
        return {
            "archbench": archbench,
            "torch": torch,
            "tmp": tmp_path_factory.mktemp("doctest"),
            "manifest": demo_manifest(),
            "demo_runs": _demo_runs,
        }

    yield make
    for kind, table in registry._REGISTRY.items():
        table.clear()
        table.update(saved[kind])


@pytest.fixture(autouse=True)
def _doctest_session(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return  # ordinary tests bring their own fixtures (tests/conftest.py)
    make = request.getfixturevalue("archbench_doctest_globals")
    request.getfixturevalue("doctest_namespace").update(make())
