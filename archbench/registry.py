"""The layer registry: every stem, block, downsampling layer and head that an ArchSpec can name.

Each entry carries a typed parameter schema, so specs are validated (and defaults filled) as data,
before any module is built, and the search-space language knows what each layer can vary.
"""
from __future__ import annotations

import difflib
import reprlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from archbench.errors import UserError

if TYPE_CHECKING:
    from torch import nn

LayerKind = Literal["stem", "block", "downsample", "head"]
Layout = Literal["pyramid", "isotropic"]
KINDS: tuple[LayerKind, ...] = ("stem", "block", "downsample", "head")

_REQUIRED = object()


class SpecError(UserError):
    """An architecture or space description is invalid; the message names the key path."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class Param:
    """One parameter of a registered layer.

    Args:
        name: the key in the spec's ``params`` mapping.
        type: ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of ints, e.g. per-level sizes).
        default: the value used when the spec omits it; omit for a required parameter.
        choices: the allowed values, for enumerations.
        min: the smallest allowed value for numbers (inclusive).
        help: one line for ``archbench space show`` and the docs.
    """

    name: str
    type: type
    default: Any = _REQUIRED
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def check(self, value: Any, path: str) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise SpecError naming ``path``.

        Numbers must also be finite and of a sane size (``archbench._validate.finite``).
        """
        from archbench._validate import finite  # it imports SpecError from here

        finite(value, path)  # first: float(10**400) would overflow
        if self.type is float and _is_int(value):
            value = float(value)
        if self.type is list:
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, list) or not all(_is_int(v) for v in value):
                raise SpecError(path, f"expected a list of integers, got {reprlib.repr(value)}")
            for i, v in enumerate(value):
                finite(v, f"{path}[{i}]")
        elif self.type is int:
            if not _is_int(value):
                raise SpecError(path, f"expected an integer, got {reprlib.repr(value)}")
        elif self.type is bool:
            if not isinstance(value, bool):
                raise SpecError(path, f"expected true or false, got {reprlib.repr(value)}")
        elif not isinstance(value, self.type) or isinstance(value, bool):
            raise SpecError(path, f"expected {self.type.__name__}, got {reprlib.repr(value)}")
        if self.choices is not None and value not in self.choices:
            raise SpecError(path, f"{reprlib.repr(value)} is not one of {list(self.choices)}")
        if self.min is not None and not isinstance(value, list) and value < self.min:
            raise SpecError(path, f"must be >= {self.min}, got {reprlib.repr(value)}")
        return value


@dataclass(frozen=True)
class BlockContext:
    """Where a block sits in the network, handed to every block factory.

    ``resolution`` is the feature-map size (H, W) at the architecture's own ``img_size``; blocks
    that size parameters by resolution (HorNet's global filter, CMT's relative bias) use it, and
    must still run at any other resolution the network's stride allows.
    """

    dim: int
    layout: Layout
    stage_index: int
    block_index: int
    stage_depth: int
    drop_path: float
    resolution: tuple[int, int]
    num_prefix_tokens: int = 0
    # One dict per stage, handed to every block of that stage: modules the paper shares across a
    # stage's blocks (CMT's relative bias) are created by the first block and found by the rest.
    stage_shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def block_phase(self, period: int) -> int:
        """``block_index % period``: all that a block alternating with a period depends on (Swin's
        shifted windows: 2; Hire-MLP's shift steps). Read this rather than ``block_index`` so the
        per-layer cost cache keys such a block by its phase and not by its position in the stage."""
        return self.block_index % period


@dataclass(frozen=True)
class LayerInfo:
    """A registered layer: its factory, parameter schema, supported layouts and source paper."""

    kind: LayerKind
    name: str
    factory: Callable[..., nn.Module]
    params: tuple[Param, ...]
    layouts: frozenset[str]
    paper: str
    check: Callable[[dict[str, Any], int], str | None] | None = None
    # Blocks that pass a (local, regional) pair between them (RegionViT) set this.
    carries_regional: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve(self, params: dict[str, Any] | None, path: str, *, dim: int | None = None) -> dict[str, Any]:
        """Validate ``params`` against the schema and fill defaults (canonical form for hashing)."""
        params = dict(params or {})
        known = {p.name: p for p in self.params}
        for key in params:
            if key not in known:
                hint = _closest(key, known)
                raise SpecError(f"{path}.{key}", f"unknown parameter of {self.kind} '{self.name}'{hint}")
        resolved: dict[str, Any] = {}
        for p in self.params:
            if p.name in params:
                resolved[p.name] = p.check(params[p.name], f"{path}.{p.name}")
            elif p.required:
                raise SpecError(f"{path}.{p.name}", f"required by {self.kind} '{self.name}'")
            else:
                resolved[p.name] = p.default
        if self.check is not None and dim is not None:
            problem = self.check(resolved, dim)
            if problem:
                raise SpecError(path, problem)
        return resolved


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class TokenState:
    """Runtime facts an isotropic trunk hands each block alongside its (B, N, C) tokens.

    ``hw`` is the patch grid of this forward pass, ``num_prefix_tokens`` the class tokens in front
    of it; ``attn`` lets a block hand its attention map to the next (Refiner's shared blocks);
    ``policy`` is DynamicViT's (B, N, 1) keep mask while training, which later blocks attend under.
    """

    hw: tuple[int, int]
    num_prefix_tokens: int = 0
    attn: Any = None
    policy: Any = None


_REGISTRY: dict[LayerKind, dict[str, LayerInfo]] = {kind: {} for kind in KINDS}


def register(
    kind: LayerKind,
    name: str,
    *,
    params: tuple[Param, ...] | list[Param] = (),
    layouts: tuple[str, ...] = ("pyramid",),
    paper: str = "",
    check: Callable[[dict[str, Any], int], str | None] | None = None,
    carries_regional: bool = False,
    **extra: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory`` as layer ``name`` of ``kind``.

    Factories are called as:
      - stem: ``factory(in_chans, out_dim, **params)`` -> module with an int ``stride`` attribute,
        mapping (B, in_chans, H, W) to (B, out_dim, H/stride, W/stride);
      - block: ``factory(ctx: BlockContext, **params)``; pyramid blocks map (B, C, H, W) to the same
        shape, isotropic blocks map ``(x: (B, N, C), tokens: TokenState)`` to (B, N, C);
      - downsample: ``factory(in_dim, out_dim, **params)``, (B, Cin, H, W) -> (B, Cout, H/2, W/2);
      - head: ``factory(in_dim, num_classes, layout=..., **params)``.

    ``params`` is the one list of the layer's parameters and their defaults: a factory takes exactly
    those names as keyword arguments, without defaults of its own, and may forward them as
    ``**params`` to its module (tests/blocks/test_registry_contract.py holds every factory to this).

    Example:
        >>> import torch
        >>> @register("block", "identity_demo", params=(Param("scale", float, 1.0),))
        ... def _identity(ctx, scale):
        ...     return torch.nn.Identity()
        >>> info = lookup("block", "identity_demo")
        >>> info.factory is _identity, [(p.name, p.default) for p in info.params]
        (True, [('scale', 1.0)])
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY[kind]:
            raise ValueError(f"{kind} '{name}' is registered twice")
        _REGISTRY[kind][name] = LayerInfo(
            kind=kind,
            name=name,
            factory=factory,
            params=tuple(params),
            layouts=frozenset(layouts),
            paper=paper,
            check=check,
            carries_regional=carries_regional,
            extra=dict(extra),
        )
        return factory

    return wrap


def _ensure_loaded() -> None:
    # Importing the families registers them; done lazily so `archbench.spec` stays torch-free to import.
    import archbench.blocks  # noqa: F401


def lookup(kind: LayerKind, name: str, path: str = "") -> LayerInfo:
    """The registered layer, or a SpecError that suggests the closest valid name."""
    _ensure_loaded()
    table = _REGISTRY[kind]
    if name not in table:
        raise SpecError(path, f"unknown {kind} type '{name}'{_closest(name, table)}")
    return table[name]


def names(kind: LayerKind) -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY[kind])


def _closest(name: str, options: dict[str, Any]) -> str:
    match = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(sorted(options))})"
