"""Value nodes of the search-space language: a fixed value, a choice, an integer or float range,
and a value derived from another (``{from: dim, divide: 32}``).

Each node draws from a decision source (a seed or an Optuna trial), knows its size and tests
membership, so sampling, ``Space.contains`` and ``size_log10`` share one definition of each kind.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from archbench._validate import describe
from archbench.registry import SpecError

# Names a derived value may read besides the space's `vars`: the stage's own width and depth, its
# 1-based index, the previous stage's width and the target input size.
BUILTIN_NAMES = ("dim", "depth", "stage", "prev_dim", "img_size")
OPERATIONS = ("multiply", "divide", "add", "subtract", "map")
ROUNDINGS = ("floor", "ceil", "nearest", "divisor")


class Source(Protocol):
    """Where decisions come from: a seeded hash stream or an Optuna trial (``_sample.py``)."""

    def categorical(self, name: str, options: Sequence[Any]) -> Any: ...

    def integer(self, name: str, lo: int, hi: int, step: int) -> int: ...

    def real(self, name: str, lo: float, hi: float, *, log: bool, step: float | None) -> float: ...


class InvalidSample(Exception):
    """A drawn combination that is not an architecture (e.g. 96 channels cannot split into 5 heads).

    Sampling retries; an Optuna trial is pruned. ``name`` is the hierarchical parameter name.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}" if name else message)


def same(a: Any, b: Any) -> bool:
    """Equality as a spec means it: True is not 1, 3 equals 3.0, lists compare element-wise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if _is_number(a) and _is_number(b):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_literal(v) for v in value) + "]"
    return str(value)


class Value:
    """Base class: ``path`` is where the node was written (for error messages)."""

    path: str

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def size(self) -> float:
        """Number of distinct values (``math.inf`` for a continuous range)."""
        raise NotImplementedError

    def finite_values(self) -> list[Any] | None:
        """Every value this node can take, when that is a short list independent of other values."""
        return None

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        """Whether ``value`` is one this node can produce, given the names in ``env``."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    @property
    def reads(self) -> tuple[str, ...]:
        """Names of other values this one is derived from."""
        return ()


@dataclass(frozen=True)
class Fixed(Value):
    value: Any
    path: str = ""

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        return _copy(self.value)

    def size(self) -> float:
        return 1.0

    def finite_values(self) -> list[Any]:
        return [self.value]

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        return same(value, self.value)

    def describe(self) -> str:
        return format_literal(self.value)


@dataclass(frozen=True)
class Choice(Value):
    options: tuple[Any, ...]
    path: str = ""

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        return _copy(source.categorical(name, self.options))

    def size(self) -> float:
        return float(len(self.options))

    def finite_values(self) -> list[Any]:
        return list(self.options)

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        return any(same(value, option) for option in self.options)

    def describe(self) -> str:
        return "{" + ", ".join(format_literal(v) for v in self.options) + "}"


@dataclass(frozen=True)
class IntRange(Value):
    lo: int
    hi: int
    step: int = 1
    path: str = ""

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        if self.lo == self.hi:
            return self.lo
        return source.integer(name, self.lo, self.hi, self.step)

    def size(self) -> float:
        return float((self.hi - self.lo) // self.step + 1)

    def finite_values(self) -> list[Any] | None:
        return list(range(self.lo, self.hi + 1, self.step)) if self.size() <= 4096 else None

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        if _is_number(value) and float(value).is_integer():
            value = int(value)
        return _is_int(value) and self.lo <= value <= self.hi and (value - self.lo) % self.step == 0

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int {self.lo}..{self.hi}{step}"


@dataclass(frozen=True)
class FloatRange(Value):
    lo: float
    hi: float
    log: bool = False
    step: float | None = None
    path: str = ""

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        return float(source.real(name, self.lo, self.hi, log=self.log, step=self.step))

    def size(self) -> float:
        if self.step is None:
            return math.inf
        return float(math.floor((self.hi - self.lo) / self.step + 1e-9) + 1)

    def finite_values(self) -> list[Any] | None:
        if self.step is None or self.size() > 4096:
            return None
        return [self.lo + i * self.step for i in range(int(self.size()))]

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        if not _is_number(value):
            return False
        if not self.lo - 1e-12 <= value <= self.hi + 1e-12:
            return False
        if self.step is None:
            return True
        k = (value - self.lo) / self.step
        return math.isclose(k, round(k), abs_tol=1e-6)

    def describe(self) -> str:
        how = " log" if self.log else (f" step {format_literal(self.step)}" if self.step else "")
        return f"float {format_literal(self.lo)}..{format_literal(self.hi)}{how}"


@dataclass(frozen=True)
class Derived(Value):
    """``{from: NAME, <operation>: OPERAND, round: MODE}``; no operation copies the value (a tie).

    ``divide`` must come out whole unless ``round`` says how to make it so; ``round: divisor`` picks
    the divisor of the source closest to the quotient (what a head count needs: 96 / 64 -> 2).
    ``map: {a: x, b: y}`` looks the source up in a table (ties a string to a choice elsewhere).
    """

    source: str
    operation: str | None = None
    operand: Value | None = None
    rounding: str | None = None
    path: str = ""
    table: tuple[tuple[Any, Any], ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.source,)

    def draw(self, source: Source, name: str, env: Mapping[str, Any]) -> Any:
        operand = None
        if self.operand is not None:
            operand = self.operand.draw(source, f"{name}.{self.operation}", env)
        return self.apply(env[self.source], operand, name)

    def apply(self, base: Any, operand: Any, name: str = "") -> Any:
        if self.operation is None:
            return _copy(base)
        if self.operation == "map":
            for key, value in self.table:
                if same(key, base):
                    return _copy(value)
            raise InvalidSample(name, f"map has no entry for {self.source} = {format_literal(base)}")
        if not _is_number(base) or not _is_number(operand):
            raise InvalidSample(name, f"cannot {self.operation} {base!r} by {operand!r}")
        if self.operation == "multiply":
            result = base * operand
        elif self.operation == "add":
            result = base + operand
        elif self.operation == "subtract":
            result = base - operand
        else:
            if operand == 0:
                raise InvalidSample(name, "division by zero")
            result = base / operand
        return self._round(base, result, name)

    def _round(self, base: Any, result: float, name: str) -> Any:
        if _is_int(base) and isinstance(result, float) and self.rounding is None:
            if result.is_integer():
                return int(result)
            raise InvalidSample(
                name, f"{self.source} {format_literal(base)} {self.operation} gives {result:g}, not a whole number (add `round:`)"
            )
        if self.rounding is None:
            return result
        if self.rounding == "floor":
            return max(1, math.floor(result))
        if self.rounding == "ceil":
            return max(1, math.ceil(result))
        if self.rounding == "nearest":
            return max(1, int(math.floor(result + 0.5)))
        if not _is_int(base) or base < 1:
            raise InvalidSample(name, f"round: divisor needs a positive whole {self.source}, got {base!r}")
        divisors = [d for d in range(1, base + 1) if base % d == 0]
        # Ties go to the larger divisor: heads no wider than asked (96 / 64 = 1.5 -> 2 heads of 48).
        return min(divisors, key=lambda d: (abs(d - result), -d))

    def size(self) -> float:
        return self.operand.size() if self.operand is not None else 1.0

    def outcomes(self, env: Mapping[str, Any]) -> list[Any] | None:
        """Every value this node can give in ``env`` (None when the operand is continuous)."""
        if self.source not in env:
            return None
        if self.operation == "map":
            return [v for k, v in self.table if same(k, env[self.source])]
        base = env[self.source]
        operands = [None] if self.operand is None else self.operand.finite_values()
        if operands is None:
            return None
        results = []
        for operand in operands:
            try:
                results.append(self.apply(base, operand))
            except InvalidSample:
                continue
        return results

    def table_values(self) -> list[Any]:
        return [v for _, v in self.table]

    def holds(self, value: Any, env: Mapping[str, Any]) -> bool:
        outcomes = self.outcomes(env)
        if outcomes is not None:
            return any(same(value, v) for v in outcomes)
        # A continuous operand: invert the operation and ask the operand.
        base = env.get(self.source)
        if self.operation == "map" or not _is_number(base) or not _is_number(value) or self.operand is None or self.rounding:
            return False
        inverse = {
            "multiply": lambda: value / base if base else None,
            "divide": lambda: base / value if value else None,
            "add": lambda: value - base,
            "subtract": lambda: base - value,
        }[self.operation or "add"]()
        return inverse is not None and self.operand.holds(inverse, env)

    def describe(self) -> str:
        if self.operation is None:
            return f"= {self.source}"
        if self.operation == "map":
            pairs = ", ".join(f"{format_literal(k)} → {format_literal(v)}" for k, v in self.table)
            return f"= {self.source} mapped {{{pairs}}}"
        operand = self.operand.describe() if self.operand is not None else "?"
        symbol = {"multiply": "×", "divide": "/", "add": "+", "subtract": "-"}[self.operation]
        rounding = f" ({self.rounding})" if self.rounding else ""
        return f"= {self.source} {symbol} {operand}{rounding}"


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


# ---- parsing ---------------------------------------------------------------------------------
_SAMPLING_KEYS = {"choice", "int", "float", "from"}
_EXTRA_KEYS = {"int": {"step"}, "float": {"log", "step"}, "choice": set(), "from": {*OPERATIONS, "round"}}


def parse_value(raw: Any, path: str, *, allow_derived: bool = True) -> Value:
    """A value node from YAML: a literal (scalar or list of scalars) or a one-key mapping.

    Example:
        >>> parse_value({"int": [1, 4]}, "depth").size()
        4.0
    """
    if isinstance(raw, Mapping):
        return _parse_mapping(raw, path, allow_derived)
    _check_literal(raw, path)
    return Fixed(raw, path)


def _check_literal(raw: Any, path: str) -> None:
    if raw is None:
        raise SpecError(path, "expected a value, got nothing (null)")
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, (list, Mapping)) or item is None:
                raise SpecError(f"{path}[{i}]", f"expected a number, string or true/false, got {describe(item)}")
        return
    if not isinstance(raw, (bool, int, float, str)):
        raise SpecError(path, f"expected a number, string, true/false or list, got {describe(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise SpecError(path, f"expected a finite number, got {raw}")


def _parse_mapping(raw: Mapping[str, Any], path: str, allow_derived: bool) -> Value:
    keys = [k for k in raw if k in _SAMPLING_KEYS]
    if len(keys) != 1:
        if not keys:
            found = ", ".join(map(str, raw)) or "nothing"
            hint = _suggest_key(raw, _SAMPLING_KEYS)
            raise SpecError(path, f"expected a value or one of choice/int/float/from, found keys {found}{hint}")
        raise SpecError(path, f"give exactly one of choice/int/float/from, not {' and '.join(keys)}")
    kind = keys[0]
    allowed = {kind} | _EXTRA_KEYS[kind]
    for key in raw:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", f"unknown key in a {{{kind}: ...}} value (allowed: {', '.join(sorted(allowed))})")
    if kind == "choice":
        return _parse_choice(raw["choice"], path)
    if kind == "int":
        return _parse_int(raw, path)
    if kind == "float":
        return _parse_float(raw, path)
    if not allow_derived:
        raise SpecError(f"{path}.from", "a derived value cannot be used here")
    return _parse_derived(raw, path)


def _parse_choice(options: Any, path: str) -> Choice:
    if not isinstance(options, list):
        raise SpecError(f"{path}.choice", f"expected a list of options, got {describe(options)}")
    if not options:
        raise SpecError(f"{path}.choice", "empty choice: give at least one option")
    for i, option in enumerate(options):
        _check_literal(option, f"{path}.choice[{i}]")
        for j in range(i):
            if same(option, options[j]):
                raise SpecError(f"{path}.choice[{i}]", f"{format_literal(option)} is listed twice")
    return Choice(tuple(options), path)


def _bounds(raw: Any, path: str, kind: str) -> tuple[Any, Any]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise SpecError(path, f"expected [low, high], got {describe(raw)}")
    lo, hi = raw
    check = _is_int if kind == "int" else _is_number
    for name, value in (("low", lo), ("high", hi)):
        if not check(value):
            what = "an integer" if kind == "int" else "a number"
            raise SpecError(path, f"{name} bound must be {what}, got {describe(value)}")
    if lo > hi:
        raise SpecError(path, f"reversed range [{format_literal(lo)}, {format_literal(hi)}]: low must be <= high")
    return lo, hi


def _parse_int(raw: Mapping[str, Any], path: str) -> IntRange:
    lo, hi = _bounds(raw["int"], f"{path}.int", "int")
    step = raw.get("step", 1)
    if not _is_int(step) or step < 1:
        raise SpecError(f"{path}.step", f"expected an integer >= 1, got {describe(step)}")
    if (hi - lo) % step:
        raise SpecError(f"{path}.step", f"high - low ({hi - lo}) is not a multiple of step {step}")
    return IntRange(lo, hi, step, path)


def _parse_float(raw: Mapping[str, Any], path: str) -> FloatRange:
    lo, hi = _bounds(raw["float"], f"{path}.float", "float")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(f"{path}.log", f"expected true or false, got {describe(log)}")
    step = raw.get("step")
    if step is not None:
        if not _is_number(step) or step <= 0:
            raise SpecError(f"{path}.step", f"expected a number > 0, got {describe(step)}")
        if log:
            raise SpecError(f"{path}.step", "a log-scaled range has no step")
    if log and lo <= 0:
        raise SpecError(f"{path}.float", f"a log-scaled range needs low > 0, got {format_literal(lo)}")
    if lo == hi:
        raise SpecError(f"{path}.float", "empty range: low equals high (write the value itself)")
    return FloatRange(float(lo), float(hi), log, None if step is None else float(step), path)


def _parse_derived(raw: Mapping[str, Any], path: str) -> Derived:
    source = raw["from"]
    if not isinstance(source, str) or not source:
        raise SpecError(f"{path}.from", f"expected a name (dim, depth, stage, prev_dim or a var), got {describe(source)}")
    ops = [k for k in OPERATIONS if k in raw]
    if len(ops) > 1:
        raise SpecError(path, f"give at most one operation, not {' and '.join(ops)}")
    operation = ops[0] if ops else None
    operand: Value | None = None
    table: tuple[tuple[Any, Any], ...] = ()
    if operation == "map":
        raw_table = raw["map"]
        if not isinstance(raw_table, Mapping) or not raw_table:
            raise SpecError(f"{path}.map", f"expected a non-empty mapping from values of '{source}' to values, got {describe(raw_table)}")
        for key, value in raw_table.items():
            _check_literal(value, f"{path}.map.{key}")
        table = tuple(raw_table.items())
    elif operation is not None:
        operand = parse_value(raw[operation], f"{path}.{operation}", allow_derived=False)
        values = operand.finite_values() or []
        for value in values:
            if not _is_number(value):
                raise SpecError(f"{path}.{operation}", f"expected a number, got {describe(value)}")
            if operation == "divide" and value == 0:
                raise SpecError(f"{path}.{operation}", "division by zero")
    rounding = raw.get("round")
    if rounding is not None:
        if rounding not in ROUNDINGS:
            raise SpecError(f"{path}.round", f"expected one of {', '.join(ROUNDINGS)}, got {describe(rounding)}")
        if operation in (None, "map"):
            raise SpecError(f"{path}.round", "round needs an arithmetic operation (multiply, divide, add, subtract)")
    return Derived(source, operation, operand, rounding, path, table)


def _suggest_key(raw: Mapping[str, Any], allowed: set[str]) -> str:
    import difflib

    for key in raw:
        match = difflib.get_close_matches(str(key), sorted(allowed), n=1)
        if match:
            return f" (did you mean '{match[0]}'?)"
    return ""


def option_key(option: Any) -> Any:
    """A categorical option as Optuna can store it: scalars as they are, lists as JSON text."""
    return json.dumps(option) if isinstance(option, (list, tuple)) else option
