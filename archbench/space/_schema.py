"""The space tree and its parser: a YAML mapping checked against the layer registry, with stage
defaults, per-stage overrides and ``repeat`` expanded into one node per stage.

Every mistake is found here, at load time, and reported with its key path: unknown keys and layer
types (closest valid name suggested), wrong value types, empty choices, reversed ranges, bad depths.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from archbench._validate import MAX_DEPTH, MAX_DIM, closest, describe, mapping, no_unknown
from archbench.registry import Param, SpecError, lookup, names
from archbench.spec import InputSpec
from archbench.space._constraints import Constraints, parse_constraints
from archbench.space._values import (
    BUILTIN_NAMES,
    Choice,
    Derived,
    Fixed,
    FloatRange,
    IntRange,
    Value,
    format_literal,
    parse_value,
)

TOP_KEYS = (
    "name", "description", "layout", "target", "constraints", "vars", "dim", "stem", "stages", "head", "tokens",
    "drop_path_rate",
)
STAGE_KEYS = ("depth", "dim", "block", "downsample")
ENTRY_KEYS = (*STAGE_KEYS, "repeat")
LAYER_KEYS = ("type", "params", "label")
MODIFIER_KEYS = ("exclude", "only", "override")
TOKEN_KEYS = ("cls_token", "pos_embed", "cls_token_stage")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# What every sample is built for (input size, channels, classes): an ArchSpec's own input.
Target = InputSpec


@dataclass(frozen=True)
class Alternative:
    """One alternative of a layer choice: a registered type and the space of its parameters.

    Parameters the space leaves out take the registry default; ``label`` names the alternative in
    parameter names (``stage2.block.<label>.order``) and defaults to the type.
    """

    label: str
    type: str
    params: tuple[tuple[str, Value], ...]
    path: str

    def size(self) -> float:
        return math.prod(v.size() for _, v in self.params) if self.params else 1.0


@dataclass(frozen=True)
class LayerChoice:
    kind: str
    alternatives: tuple[Alternative, ...]
    path: str

    def size(self) -> float:
        return sum(a.size() for a in self.alternatives)

    @property
    def labels(self) -> list[str]:
        return [a.label for a in self.alternatives]


@dataclass(frozen=True)
class StageNode:
    """One stage of the space; ``dim`` is None in an isotropic trunk (the trunk's one width)."""

    number: int
    depth: Value
    dim: Value | None
    block: LayerChoice
    downsample: LayerChoice | None
    path: str

    @property
    def optional(self) -> bool:
        """Isotropic stages whose depth may be 0 are left out of such samples."""
        return any(v == 0 for v in (self.depth.finite_values() or []))


@dataclass(frozen=True)
class SpaceTree:
    """A parsed space: every stage expanded, every layer checked against the registry."""

    name: str
    description: str
    layout: str
    target: Target
    constraints: Constraints
    vars: tuple[tuple[str, Value], ...]
    dim: Value | None
    stem: LayerChoice
    stages: tuple[StageNode, ...]
    head: LayerChoice
    tokens: tuple[tuple[str, Value], ...] | None
    drop_path_rate: Value


# ---- parsing ---------------------------------------------------------------------------------
def parse_tree(data: Mapping[str, Any], default_name: str) -> SpaceTree:
    """Validate a merged space mapping and expand it into a SpaceTree (errors carry key paths)."""
    no_unknown(data, TOP_KEYS, "")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _LABEL.match(name.replace("-", "_")):
        raise SpecError("name", f"expected a short name (letters, digits, _ or -), got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SpecError("description", f"expected text, got {describe(description)}")
    if "layout" not in data:
        raise SpecError("layout", "required: 'pyramid' (stages at falling resolution) or 'isotropic' (one trunk)")
    layout = data["layout"]
    if layout not in ("pyramid", "isotropic"):
        raise SpecError("layout", f"expected 'pyramid' or 'isotropic', got {describe(layout)}")
    target = _parse_target(data.get("target", {}))
    constraints = parse_constraints(data.get("constraints"), "constraints")

    scope = _Scope()
    variables = _parse_vars(data.get("vars", {}), scope)

    dim: Value | None = None
    if layout == "isotropic":
        if "dim" not in data:
            raise SpecError("dim", "required in an isotropic space: the width every block of the trunk shares")
        dim = _positive(parse_value(data["dim"], "dim"), "dim", minimum=1, maximum=MAX_DIM)
        scope.check(dim, set())
    elif "dim" in data:
        raise SpecError("dim", "a pyramid sets the width per stage (stages.*.dim), not at the top")

    if "stages" not in data:
        raise SpecError("stages", "required: the stages of the network")
    stages = _parse_stages(data["stages"], layout, scope)

    if "stem" not in data:
        raise SpecError("stem", "required: the stem layer (e.g. {type: patchify, params: {patch_size: 4}})")
    stem = _finish_layer(_raw_layer(data["stem"], "stem"), "stem", layout, scope, {"dim"})
    head = _finish_layer(_raw_layer(data.get("head", "linear"), "head"), "head", layout, scope, {"dim"})

    tokens = None
    if layout == "isotropic":
        tokens = _parse_tokens(data.get("tokens", {}), len(stages), scope)
    elif "tokens" in data:
        raise SpecError("tokens", "only isotropic trunks have class tokens and position embeddings")

    drop_path_rate = parse_value(data.get("drop_path_rate", 0.0), "drop_path_rate")
    scope.check(drop_path_rate, set())
    for value in drop_path_rate.finite_values() or []:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise SpecError("drop_path_rate", f"expected numbers in [0, 1), got {format_literal(value)}")

    return SpaceTree(
        name=name,
        description=description,
        layout=layout,
        target=target,
        constraints=constraints,
        vars=variables,
        dim=dim,
        stem=stem,
        stages=stages,
        head=head,
        tokens=tokens,
        drop_path_rate=drop_path_rate,
    )


def _parse_target(raw: Any) -> Target:
    # A searched model is trained, so it needs a classifier: at least one class.
    return InputSpec.from_dict(raw, "target", min_classes=1)


class _Scope:
    """The names a derived value may read: the vars defined so far plus the context's builtins."""

    def __init__(self) -> None:
        self.vars: list[str] = []

    def check(self, value: Value, builtins: set[str]) -> None:
        for name in value.reads:
            if name in self.vars or name in builtins or name == "img_size":
                continue
            known = sorted(set(self.vars) | builtins)
            if name in BUILTIN_NAMES:
                where = {"prev_dim": "after the first stage", "dim": "inside a stage, stem or head"}.get(name, "inside a stage")
                raise SpecError(f"{value.path}.from", f"'{name}' is only defined {where}")
            match = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else (f" (defined here: {', '.join(known)})" if known else "")
            raise SpecError(f"{value.path}.from", f"unknown name '{name}': not a var{hint}")


def _parse_vars(raw: Any, scope: _Scope) -> tuple[tuple[str, Value], ...]:
    raw = mapping(raw, "vars")
    out = []
    for key, value in raw.items():
        path = f"vars.{key}"
        if not isinstance(key, str) or not _LABEL.match(key):
            raise SpecError(path, "a var name uses letters, digits and _ only")
        if key in BUILTIN_NAMES:
            raise SpecError(path, f"'{key}' is a built-in name ({', '.join(BUILTIN_NAMES)}); pick another")
        node = parse_value(value, path)
        scope.check(node, set())
        scope.vars.append(key)
        out.append((key, node))
    return tuple(out)


def _parse_tokens(raw: Any, num_stages: int, scope: _Scope) -> tuple[tuple[str, Value], ...]:
    raw = mapping(raw, "tokens")
    no_unknown(raw, TOKEN_KEYS, "tokens")
    defaults = {"cls_token": True, "pos_embed": True, "cls_token_stage": 0}
    out = []
    for key in TOKEN_KEYS:
        path = f"tokens.{key}"
        node = parse_value(raw.get(key, defaults[key]), path)
        scope.check(node, set())
        for value in node.finite_values() or []:
            if key == "cls_token_stage":
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= num_stages:
                    raise SpecError(path, f"expected a stage index 0..{num_stages} (0: before the first stage), got {describe(value)}")
            elif not isinstance(value, bool):
                raise SpecError(path, f"expected true or false, got {describe(value)}")
        out.append((key, node))
    return tuple(out)


# ---- stages ----------------------------------------------------------------------------------
def _parse_stages(raw: Any, layout: str, scope: _Scope) -> tuple[StageNode, ...]:
    if isinstance(raw, list):
        default: Mapping[str, Any] = {}
        entries, entries_path = raw, "stages"
    elif isinstance(raw, Mapping):
        no_unknown(raw, ("default", "list"), "stages")
        default = mapping(raw.get("default", {}), "stages.default")
        no_unknown(default, STAGE_KEYS, "stages.default")
        if "list" not in raw:
            raise SpecError("stages.list", "required: one entry per stage ({} takes the default; repeat: N for N stages)")
        entries, entries_path = raw["list"], "stages.list"
    else:
        raise SpecError("stages", f"expected a list of stages or {{default: ..., list: [...]}}, got {describe(raw)}")
    if not isinstance(entries, list) or not entries:
        raise SpecError(entries_path, "expected a non-empty list of stages")

    default_block = _raw_layer(default["block"], "stages.default.block") if "block" in default else None
    default_down = None
    if default.get("downsample") is not None:
        default_down = _raw_layer(default["downsample"], "stages.default.downsample")

    stages: list[StageNode] = []
    for i, entry in enumerate(entries):
        path = f"{entries_path}[{i}]"
        entry = mapping({} if entry is None else entry, path)
        no_unknown(entry, ENTRY_KEYS, path)
        repeat = entry.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise SpecError(f"{path}.repeat", f"expected an integer >= 1, got {describe(repeat)}")
        for _ in range(repeat):
            number = len(stages) + 1
            stages.append(_stage(entry, default, default_block, default_down, path, number, layout, scope))
    if len(stages) > 64:
        raise SpecError(entries_path, f"{len(stages)} stages: at most 64")
    return tuple(stages)


def _stage(
    entry: Mapping[str, Any],
    default: Mapping[str, Any],
    default_block: list[_RawAlt] | None,
    default_down: list[_RawAlt] | None,
    path: str,
    number: int,
    layout: str,
    scope: _Scope,
) -> StageNode:
    def pick(key: str) -> tuple[Any, str]:
        if key in entry:
            return entry[key], f"{path}.{key}"
        if key in default:
            return default[key], f"stages.default.{key}"
        raise SpecError(f"{path}.{key}", f"required (stage{number} has no {key} and stages.default gives none)")

    builtins = {"stage"} | ({"prev_dim"} if number > 1 else set())
    raw_depth, depth_path = pick("depth")
    depth = _positive(parse_value(raw_depth, depth_path), depth_path, minimum=0 if layout == "isotropic" else 1, maximum=MAX_DEPTH)
    scope.check(depth, builtins)
    builtins.add("depth")

    dim = None
    if layout == "pyramid":
        raw_dim, dim_path = pick("dim")
        dim = _positive(parse_value(raw_dim, dim_path), dim_path, minimum=1, maximum=MAX_DIM)
        scope.check(dim, builtins)
    elif "dim" in entry or "dim" in default:
        where = f"{path}.dim" if "dim" in entry else "stages.default.dim"
        raise SpecError(where, "an isotropic trunk has one width: set the top-level 'dim'")
    builtins.add("dim")

    if "block" in entry:
        raw_block = _raw_layer(entry["block"], f"{path}.block", inherited=default_block)
    elif default_block is not None:
        raw_block = default_block
    else:
        raise SpecError(f"{path}.block", f"required (stage{number} has no block and stages.default gives none)")
    block = _finish_layer(raw_block, "block", layout, scope, builtins)

    downsample = None
    if "downsample" in entry:
        if entry["downsample"] is not None:
            downsample = _raw_layer(entry["downsample"], f"{path}.downsample", inherited=default_down)
    elif number > 1:
        # The stem sets the first stage's resolution; the default downsampling starts at stage 2.
        downsample = default_down
    if downsample is not None and layout == "isotropic":
        raise SpecError(downsample[0].path, "an isotropic trunk keeps one resolution: no downsample")
    if layout == "pyramid" and number > 1 and downsample is None and "downsample" not in entry:
        raise SpecError(f"{path}.downsample", f"stage{number} needs a downsample layer (set stages.default.downsample)")
    return StageNode(
        number=number,
        depth=depth,
        dim=dim,
        block=block,
        downsample=None if downsample is None else _finish_layer(downsample, "downsample", layout, scope, builtins),
        path=path,
    )


def _positive(value: Value, path: str, *, minimum: int, maximum: int) -> Value:
    if isinstance(value, FloatRange):
        raise SpecError(path, "expected whole numbers: use {int: [low, high]} or {choice: [...]}")
    if isinstance(value, IntRange):
        if value.lo < minimum:
            raise SpecError(f"{path}.int", f"must be >= {minimum}, got {value.lo}" + (" (negative)" if value.lo < 0 else ""))
        if value.hi > maximum:
            raise SpecError(f"{path}.int", f"must be <= {maximum}, got {value.hi}")
    literals = [] if isinstance(value, IntRange) else (value.finite_values() or [])
    for v in literals:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(path, f"expected an integer, got {describe(v)}")
        if v < minimum:
            extra = " (depth 0 leaves an isotropic stage out; a pyramid stage needs depth >= 1)" if v == 0 and minimum == 1 and "depth" in path else ""
            raise SpecError(path, f"must be >= {minimum}, got {v}{extra}")
        if v > maximum:
            raise SpecError(path, f"must be <= {maximum}, got {v}")
    if isinstance(value, Derived) and value.operand is not None:
        for v in value.operand.finite_values() or []:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise SpecError(path, f"expected numbers, got {describe(v)}")
    return value


# ---- layers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RawAlt:
    """An alternative before registry validation; params keep the path where each was written."""

    label: str
    type: str
    params: tuple[tuple[str, Any, str], ...]
    path: str


def _raw_layer(raw: Any, path: str, *, inherited: list[_RawAlt] | None = None) -> list[_RawAlt]:
    """A layer as written: a type name, {type, params}, {choice: [...]}, or (in a stage entry)
    modifiers of the default's alternatives: {exclude: [...], only: [...], override: {label: {...}}}."""
    if isinstance(raw, str):
        return [_raw_alt(raw, path)]
    if raw is None:
        raise SpecError(path, "expected a layer: a type name, {type: ..., params: ...} or {choice: [...]}")
    raw = mapping(raw, path)
    modifiers = [k for k in raw if k in MODIFIER_KEYS]
    if modifiers:
        others = [k for k in raw if k not in MODIFIER_KEYS]
        if others:
            raise SpecError(f"{path}.{others[0]}", f"cannot mix {others[0]} with {'/'.join(modifiers)} (modifiers change the default's alternatives)")
        if inherited is None:
            raise SpecError(f"{path}.{modifiers[0]}", "exclude/only/override change inherited alternatives; there is no default layer here")
        return _modify(inherited, raw, path)
    if "choice" in raw:
        no_unknown(raw, ("choice",), path)
        options = raw["choice"]
        if not isinstance(options, list):
            raise SpecError(f"{path}.choice", f"expected a list of alternatives, got {describe(options)}")
        if not options:
            raise SpecError(f"{path}.choice", "empty choice: give at least one alternative")
        alternatives = [_raw_alt(option, f"{path}.choice[{i}]") for i, option in enumerate(options)]
        seen: dict[str, int] = {}
        for i, alt in enumerate(alternatives):
            if alt.label in seen:
                raise SpecError(
                    f"{path}.choice[{i}]",
                    f"alternative '{alt.label}' appears twice (choice[{seen[alt.label]}]); give one a distinct 'label'",
                )
            seen[alt.label] = i
        return alternatives
    return [_raw_alt(raw, path)]


def _raw_alt(raw: Any, path: str) -> _RawAlt:
    if isinstance(raw, str):
        raw = {"type": raw}
    raw = mapping(raw, path)
    no_unknown(raw, LAYER_KEYS, path)
    type_name = raw.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise SpecError(f"{path}.type", f"required: the name of a registered layer, got {describe(type_name)}")
    label = raw.get("label", type_name)
    if not isinstance(label, str) or not _LABEL.match(label):
        raise SpecError(f"{path}.label", f"expected a name of letters, digits and _, got {describe(label)}")
    params = mapping(raw.get("params", {}) or {}, f"{path}.params")
    return _RawAlt(label, type_name, tuple((k, v, f"{path}.params.{k}") for k, v in params.items()), path)


def _modify(inherited: list[_RawAlt], raw: Mapping[str, Any], path: str) -> list[_RawAlt]:
    alternatives = list(inherited)
    labels = [a.label for a in alternatives]

    def check_labels(key: str) -> list[str]:
        value = raw[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise SpecError(f"{path}.{key}", f"expected a non-empty list of alternative labels, got {describe(value)}")
        for i, label in enumerate(value):
            if label not in labels:
                raise SpecError(f"{path}.{key}[{i}]", f"no alternative '{label}' in the default{closest(label, labels)}")
        return value

    if "only" in raw:
        keep = check_labels("only")
        alternatives = [a for a in alternatives if a.label in keep]
    if "exclude" in raw:
        drop = check_labels("exclude")
        alternatives = [a for a in alternatives if a.label not in drop]
    if not alternatives:
        raise SpecError(path, "exclude/only leave no alternative")
    if "override" in raw:
        override = mapping(raw["override"], f"{path}.override")
        current = [a.label for a in alternatives]
        for label, params in override.items():
            if label not in current:
                raise SpecError(f"{path}.override.{label}", f"no alternative '{label}' here{closest(str(label), current)}")
            params = mapping(params, f"{path}.override.{label}")
            index = current.index(label)
            alt = alternatives[index]
            merged = {k: (v, p) for k, v, p in alt.params}
            for key, value in params.items():
                merged[key] = (value, f"{path}.override.{label}.{key}")
            alternatives[index] = _RawAlt(alt.label, alt.type, tuple((k, v, p) for k, (v, p) in merged.items()), alt.path)
    return alternatives


def _finish_layer(raw: list[_RawAlt], kind: str, layout: str, scope: _Scope, builtins: set[str]) -> LayerChoice:
    return LayerChoice(kind, tuple(_finish_alt(a, kind, layout, scope, builtins) for a in raw), raw[0].path.rsplit(".choice[", 1)[0])


def _finish_alt(raw: _RawAlt, kind: str, layout: str, scope: _Scope, builtins: set[str]) -> Alternative:
    info = lookup(kind, raw.type, f"{raw.path}.type")  # type: ignore[arg-type]
    if layout not in info.layouts:
        fits = [n for n in names(kind) if layout in lookup(kind, n).layouts]  # type: ignore[arg-type]
        raise SpecError(f"{raw.path}.type", f"{kind} '{raw.type}' does not fit a {layout} layout (those that do: {', '.join(fits)})")
    schema = {p.name: p for p in info.params}
    params: list[tuple[str, Value]] = []
    given = set()
    for key, value, path in raw.params:
        if key not in schema:
            known = list(schema)
            hint = closest(str(key), known) if known else f" ({kind} '{raw.type}' has no parameters)"
            raise SpecError(path, f"unknown parameter of {kind} '{raw.type}'{hint}")
        node = parse_value(value, path)
        scope.check(node, builtins)
        _check_param(schema[key], node, path)
        params.append((key, node))
        given.add(key)
    for p in info.params:
        if p.required and p.name not in given:
            raise SpecError(f"{raw.path}.params.{p.name}", f"required by {kind} '{raw.type}'{_param_help(p)}")
    return Alternative(raw.label, raw.type, tuple(params), raw.path)


def _check_param(param: Param, node: Value, path: str) -> None:
    """Type-check every value a node can take against the registry's schema, at load time."""
    if isinstance(node, FloatRange) and param.type is not float:
        raise SpecError(f"{path}.float", f"'{param.name}' takes {_type_name(param)}, not a float range")
    if isinstance(node, IntRange):
        if param.type not in (int, float):
            raise SpecError(f"{path}.int", f"'{param.name}' takes {_type_name(param)}, not an integer range")
        for bound in (node.lo, node.hi):
            param.check(bound, f"{path}.int")
        return
    if isinstance(node, FloatRange):
        param.check(node.lo, f"{path}.float")
        return
    if isinstance(node, Choice):
        for i, option in enumerate(node.options):
            param.check(option, f"{path}.choice[{i}]")
    elif isinstance(node, Fixed):
        param.check(node.value, path)
    elif isinstance(node, Derived) and node.operation == "map":
        for key, value in node.table:
            param.check(value, f"{path}.map.{key}")


def _type_name(param: Param) -> str:
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", list: "a list of integers"}[param.type]


def _param_help(param: Param) -> str:
    return f" ({param.help})" if param.help else ""
