"""The docstring examples of the light shared modules run with the ordinary suite (the whole
package's run with `pytest --doctest-modules archbench`, which imports torch, fvcore and ray)."""
from __future__ import annotations

import doctest
import importlib

import pytest

LIGHT_MODULES = ("archbench.errors", "archbench.quantity", "archbench._yaml", "archbench._validate", "archbench.spec")


@pytest.mark.parametrize("name", LIGHT_MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
