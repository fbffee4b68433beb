"""Validation helpers shared by architecture specs (``archbench.spec``) and search spaces
(``archbench.space``): each raises SpecError naming the key path and describing what it found.
"""
from __future__ import annotations

import difflib
import math
import reprlib
from typing import Any, Iterable, Mapping

from archbench.errors import UserError
from archbench.registry import SpecError

__all__ = [
    "BATCH_WHY", "IMG_SIZE_WHY", "MAX_BATCH", "MAX_DEPTH", "MAX_DIM", "MAX_IMG_SIZE", "MAX_NUMBER", "MAX_SAMPLES",
    "boolean", "closest", "describe", "finite", "integer", "mapping", "no_unknown", "option_in_range", "range_message",
]

# Sanity limits: a typo such as depth 1000000 would otherwise build for hours before failing.
MAX_DEPTH = 1024
MAX_DIM = 65536
# Any other number a spec holds (heads, kernel, mlp_ratio, ...): no layer size, count or ratio comes
# near it, and 10**40, 1e300 or inf fail here rather than as an overflow deep inside torch.
MAX_NUMBER = 2**31 - 1
# Limits of command-line sizes, checked before any work. Input resolution: published backbones are
# measured at 224-1024 px (SAM's 1024 the largest in common use); 4096 px leaves 4x headroom, while
# a ViT at 4096 px already has 65536 tokens, a 16 GiB attention matrix a head at batch 1.
MAX_IMG_SIZE = 4096
# Batch size (latency, memory, proxy training): the largest published training batches are 32k
# (LAMB, LARS); 65536 is twice that, and already 37 GiB of float32 input at 224 px.
MAX_BATCH = 65536
# Architectures sampled by `archbench spaces` / `space show`: each one is built and counted (a few
# ms each on the meta device), so 10000 is minutes of work; more says nothing a range does not.
MAX_SAMPLES = 10000
# Why each limit is what it is, as the messages and help texts say it.
IMG_SIZE_WHY = "larger than any backbone is benchmarked at"
BATCH_WHY = "twice the largest published training batch"


def describe(value: Any) -> str:
    """How a found value reads in a message: ``int 0``, ``str 'three'``, ``a list``, ``nothing (null)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**20:
        return f"{'a negative' if value < 0 else 'an'} integer of {int(math.log10(abs(value))) + 1} digits"  # repr of a huge int is no help (and fails past 4300 digits)
    return f"{type(value).__name__} {reprlib.repr(value)}"  # cut short: a list nested 900 deep is no message


def finite(value: Any, path: str, *, maximum: float = MAX_NUMBER) -> None:
    """Refuse a number that is NaN, infinite or larger in size than ``maximum`` (others pass untouched).

    Example:
        >>> finite(4.0, "stages[0].block.params.mlp_ratio")
        >>> finite(float("inf"), "stages[0].block.params.mlp_ratio")
        Traceback (most recent call last):
        archbench.registry.SpecError: stages[0].block.params.mlp_ratio: expected a finite number, got inf
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path, f"expected a finite number, got {value!r}")
    if abs(value) > maximum:
        bound = f"<= {maximum}" if value > 0 else f">= {-maximum}"
        shown = describe(value) if isinstance(value, int) else f"float {value!r}"
        raise SpecError(path, f"must be {bound}, got {shown}")


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


def integer(value: Any, path: str, *, minimum: int | None = None, maximum: int = MAX_NUMBER) -> int:
    """An int (never a bool) of at least ``minimum`` and at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise SpecError(path, f"expected an integer{bound}, got {describe(value)}")
    finite(value, path, maximum=maximum)
    return value


def option_in_range(value: int, option: str, minimum: int, maximum: int, why: str) -> int:
    """``value`` of the command-line ``option`` if within [minimum, maximum], else a UserError saying the limit and ``why``.

    Example:
        >>> option_in_range(10**8, "--samples", 0, MAX_SAMPLES, "each sample is built and counted")
        Traceback (most recent call last):
        archbench.errors.UserError: --samples must be between 0 and 10000 (each sample is built and counted), got 100000000
    """
    if not minimum <= value <= maximum:
        raise UserError(range_message(option, minimum, maximum, why, value))
    return value


def range_message(option: str, minimum: int, maximum: int, why: str, value: Any) -> str:
    """``--x must be between 1 and 10 (why), got 11``: the one wording of a refused size."""
    return f"{option} must be between {minimum} and {maximum} ({why}), got {describe(value).removeprefix('int ')}"


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"expected true or false, got {describe(value)}")
    return value
