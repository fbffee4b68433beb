"""Docstring examples (`pytest --doctest-modules archbench`) run with ``archbench`` and ``torch``
imported, as a user's session would have them, and with a throw-away cache folder."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _doctest_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return  # ordinary tests bring their own fixtures (tests/conftest.py)
    import torch

    import archbench
    import archbench.space

    namespace = request.getfixturevalue("doctest_namespace")
    namespace.update(archbench=archbench, torch=torch)
    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
