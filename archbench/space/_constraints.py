"""Budget constraints of a space (max/min MACs, max params, measured max latency) and the fast
estimate they are checked against: the model built on the meta device, its matrix products counted.

The estimate allocates no weights, so hundreds of candidates are checked in seconds on a laptop.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from archbench.registry import SpecError
from archbench.space._values import InvalidSample

if TYPE_CHECKING:
    from archbench.spec import ArchSpec

ESTIMATE_METHOD = "meta-device build, matrix products and convolutions counted (FlopCounterMode)"
_SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKMGT]?)\s*$")


@dataclass(frozen=True)
class Constraints:
    """Bounds every sample must meet before it is trained; None means no bound.

    Args:
        max_macs: most multiply-accumulates of one forward pass at the space's target size.
        min_macs: fewest MACs (keeps a search away from trivially small models).
        max_params: most unique parameters.
        max_latency_ms: most median CPU latency (batch 1, measured, so it is slow to check).
    """

    max_macs: float | None = None
    min_macs: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None

    @property
    def needs_estimate(self) -> bool:
        return any(v is not None for v in (self.max_macs, self.min_macs, self.max_params))

    @property
    def active(self) -> bool:
        return self.needs_estimate or self.max_latency_ms is not None

    def violated(self, params: float, macs: float, latency_ms: float | None = None) -> str | None:
        """The first bound broken, as a sentence, or None when all hold."""
        if self.max_macs is not None and macs > self.max_macs:
            return f"{fmt_quantity(macs)}MACs exceeds max_macs {fmt_quantity(self.max_macs)}"
        if self.min_macs is not None and macs < self.min_macs:
            return f"{fmt_quantity(macs)}MACs is below min_macs {fmt_quantity(self.min_macs)}"
        if self.max_params is not None and params > self.max_params:
            return f"{fmt_quantity(params)} parameters exceeds max_params {fmt_quantity(self.max_params)}"
        if self.max_latency_ms is not None and latency_ms is not None and latency_ms > self.max_latency_ms:
            return f"latency {latency_ms:.2f} ms exceeds max_latency_ms {self.max_latency_ms:g}"
        return None

    def with_values(self, **values: float | str | None) -> Constraints:
        """A copy with some bounds replaced (strings such as "6G" are accepted)."""
        parsed = {k: _quantity(v, k, k) if v is not None else None for k, v in values.items()}
        unknown = set(parsed) - {f.name for f in fields(self)}
        if unknown:
            raise SpecError(sorted(unknown)[0], f"unknown constraint (known: {', '.join(f.name for f in fields(self))})")
        return replace(self, **parsed)

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                parts.append(f"{f.name} {value:g}" if f.name == "max_latency_ms" else f"{f.name} {fmt_quantity(value)}")
        return ", ".join(parts) or "none"


def fmt_quantity(value: float) -> str:
    """6.02e9 -> '6.02 G' (decimal prefixes, as papers print MACs and parameters)."""
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.3g} "


def parse_constraints(raw: Any, path: str) -> Constraints:
    if raw is None:
        return Constraints()
    if not isinstance(raw, Mapping):
        raise SpecError(path, "expected a mapping such as {max_macs: 6G, max_params: 30M}")
    known = [f.name for f in fields(Constraints)]
    values: dict[str, float | None] = {}
    for key, value in raw.items():
        if key not in known:
            import difflib

            match = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else f" (known: {', '.join(known)})"
            raise SpecError(f"{path}.{key}", f"unknown constraint{hint}")
        values[key] = None if value is None else _quantity(value, f"{path}.{key}", key)
    constraints = Constraints(**values)
    if constraints.min_macs is not None and constraints.max_macs is not None and constraints.min_macs > constraints.max_macs:
        raise SpecError(f"{path}.min_macs", "min_macs is larger than max_macs: no architecture can meet both")
    return constraints


def _quantity(value: Any, path: str, key: str) -> float:
    if isinstance(value, bool):
        raise SpecError(path, f"expected a number such as 6G or 6.0e9, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and (match := _QUANTITY.match(value)):
        if key == "max_latency_ms" and match.group(2):
            raise SpecError(path, f"latency is in milliseconds: write a plain number, got {value!r}")
        number = float(match.group(1)) * _SUFFIXES[match.group(2)]
    else:
        raise SpecError(path, f"expected a number such as 6G, 30M or 6.0e9, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise SpecError(path, f"expected a positive number, got {value!r}")
    return number


# ---- estimates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """Parameters and MACs of one architecture at its own input size, and how they were counted."""

    params: int
    macs: int
    method: str = ESTIMATE_METHOD


def estimate(arch: ArchSpec) -> Estimate:
    """Count ``arch`` without allocating it: build on the meta device, count one forward pass.

    A layer that refuses the architecture (a SpecError from its factory, a shape error in the
    forward pass) raises InvalidSample; a block that cannot run on meta tensors falls back to a
    CPU build and the audited fvcore count.
    """
    import torch

    from archbench.builder import build
    from archbench.measure import count_macs, count_macs_meta, count_params

    try:
        with _skip_meta_init_mode()(), torch.device("meta"):
            model = build(arch)
        params = count_params(model)
        macs = count_macs_meta(lambda: model, arch.input.img_size, in_chans=arch.input.in_chans)
        return Estimate(params=int(params), macs=int(macs))
    except SpecError as err:
        raise InvalidSample(f"build {err.path}" if err.path else "build", err.message) from None
    except Exception as err:  # noqa: BLE001 - any failure of a candidate's forward pass rejects it
        if "meta" not in str(err).lower():
            raise InvalidSample("forward", f"{type(err).__name__}: {_first_line(err)}") from None
    try:
        model = build(arch)
        count = count_macs(model, arch.input.img_size, in_chans=arch.input.in_chans)
    except Exception as err:  # noqa: BLE001
        raise InvalidSample("forward", f"{type(err).__name__}: {_first_line(err)}") from None
    return Estimate(params=int(count_params(model)), macs=int(count.total), method="CPU build, fvcore count (meta build failed)")


@lru_cache(maxsize=None)
def _skip_meta_init_mode() -> type:
    import torch
    from torch.overrides import TorchFunctionMode

    class SkipMetaInit(TorchFunctionMode):
        """Skips in-place value transforms on meta tensors during a build: they change nothing a
        meta tensor holds, yet erfinv_ (timm's trunc_normal_) costs ~20 ms a call in Python refs."""

        SKIP = frozenset({torch.Tensor.erfinv_, torch.Tensor.clamp_, torch.Tensor.normal_, torch.Tensor.uniform_})

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            if func in self.SKIP and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
                return args[0]
            return func(*args, **(kwargs or {}))

    return SkipMetaInit


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def measure_latency_ms(arch: ArchSpec) -> float:
    """A quick CPU median latency (batch 1, one thread) for the max_latency_ms constraint."""
    from archbench.builder import build
    from archbench.measure import measure_latency

    model = build(arch).eval()
    result = measure_latency(model, arch.input.img_size, threads=1, min_repeats=5, max_repeats=50, min_seconds=0.2, max_seconds=3.0)
    return float(result.median)


# ---- cached ranges ---------------------------------------------------------------------------
def cache_dir() -> Path:
    root = os.environ.get("ARCHBENCH_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archbench"


def read_cache(key: str) -> dict[str, Any] | None:
    path = cache_dir() / "space-ranges" / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_cache(key: str, data: dict[str, Any]) -> None:
    # Best effort: a read-only home directory only costs a recount next time.
    folder = cache_dir() / "space-ranges"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        tmp.replace(folder / f"{key}.json")
    except OSError:
        pass
