"""Every docstring example (``>>>``) in the package runs with the ordinary suite, one test per module
that has examples, with the names the root conftest.py gives them (as under
`pytest --doctest-modules archbench`). A module whose examples all disappear fails too."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from typing import Any, Callable

import pytest

import archbench


def _modules_with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    found = []
    for info in pkgutil.walk_packages(archbench.__path__, prefix="archbench."):
        module = importlib.import_module(info.name)
        if any(test.examples for test in finder.find(module)):
            found.append(info.name)
    return found


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert len(MODULES) >= 27, MODULES  # 27 modules had examples when this was written


# All under ~3 s each (the slowest, measure.cost and train.loop, count MACs and train one epoch);
# mark a module's parameter `slow` if its examples grow beyond that.
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, archbench_doctest_globals: Callable[[], dict[str, Any]]) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)  # as pytest's doctest_optionflags default
    for test in doctest.DocTestFinder().find(module):
        if test.examples:
            test.globs.update(archbench_doctest_globals())
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
