"""Validation helpers shared by architecture specs (``archbench.spec``) and search spaces
(``archbench.space``): each raises SpecError naming the key path and describing what it found.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from archbench.registry import SpecError

__all__ = ["boolean", "closest", "describe", "integer", "mapping", "no_unknown"]


def describe(value: Any) -> str:
    """How a found value reads in a message: ``int 0``, ``str 'three'``, ``a list``, ``nothing (null)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def closest(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest option, else `` (valid: a, b, c)``."""
    options = list(options)
    match = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(options)})"


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping, got {describe(value)}")
    return value


def no_unknown(raw: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Refuse keys outside ``allowed``, suggesting the closest valid one."""
    allowed = list(allowed)
    for key in raw:
        if key not in allowed:
            full = f"{path}.{key}" if path else str(key)
            raise SpecError(full, f"unknown key{closest(str(key), allowed)}")


def integer(value: Any, path: str, *, minimum: int | None = None) -> int:
    """An int (never a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise SpecError(path, f"expected an integer{bound}, got {describe(value)}")
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"expected true or false, got {describe(value)}")
    return value
