"""``Space.contains``: is an architecture one the space can produce?

The architecture's own values fix most of the space's decisions; the rest (shared vars, which
isotropic stages were left out, a derived value's operand) are found by a small search.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping

from archbench.registry import lookup
from archbench.space._schema import LayerChoice, SpaceTree, StageNode
from archbench.space._values import Derived, Value, same

if TYPE_CHECKING:
    from archbench.spec import ArchSpec

_MAX_VAR_ASSIGNMENTS = 20000


def contains(tree: SpaceTree, arch: ArchSpec) -> bool:
    """True when some decisions of ``tree`` give ``arch``; ``name``, ``input`` (the space's target
    decides it) and ``drop_path_rate`` (a training setting) are not compared."""
    data = arch.to_dict()
    if data["layout"] != tree.layout:
        return False
    for env in _var_assignments(tree, data):
        if _matches(tree, data, env):
            return True
    return False


def _var_assignments(tree: SpaceTree, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every assignment of the space's vars worth trying: their finite domains, or for continuous
    ones the numbers that actually occur in the architecture; derived vars follow the others."""
    leaves = list(_numbers(data))
    domains: list[list[Any] | None] = []
    for _, node in tree.vars:
        if isinstance(node, Derived):
            domains.append(None)
            continue
        values = node.finite_values()
        domains.append(values if values is not None else [v for v in leaves if node.holds(v, {})])
    total = 1
    for domain in domains:
        total *= max(len(domain or []), 1)
    if total > _MAX_VAR_ASSIGNMENTS:
        # Too many combinations: keep only values that occur in the architecture.
        domains = [None if d is None else [v for v in d if any(same(v, leaf) for leaf in leaves)] for d in domains]

    def assign(i: int, env: dict[str, Any]) -> Iterator[dict[str, Any]]:
        # img_size is the space's target, whatever size the architecture was written for.
        if i == len(tree.vars):
            yield env
            return
        name, node = tree.vars[i]
        domain = domains[i]
        values = (node.outcomes(env) or []) if isinstance(node, Derived) else (domain or [])
        for value in values:
            yield from assign(i + 1, {**env, name: value})

    yield from assign(0, {"img_size": tree.target.img_size})


def _numbers(data: Any) -> Iterator[Any]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _numbers(value)
    elif isinstance(data, list):
        yield data
        for value in data:
            yield from _numbers(value)
    elif not isinstance(data, str) and data is not None:
        yield data


def _matches(tree: SpaceTree, data: dict[str, Any], env: dict[str, Any]) -> bool:
    stages = data["stages"]
    if tree.dim is not None and not tree.dim.holds(stages[0]["dim"], env):
        return False
    if not layer_holds(tree.stem, data["stem"], {**env, "dim": stages[0]["dim"]}):
        return False
    if not layer_holds(tree.head, data["head"], {**env, "dim": stages[-1]["dim"]}):
        return False
    for kept_before in _align(tree.stages, stages, env):
        if tree.tokens is None or _tokens_hold(tree, data.get("tokens") or {}, kept_before, env):
            return True
    return False


def _align(space: tuple[StageNode, ...], stages: list[dict[str, Any]], env: dict[str, Any]) -> Iterator[list[int]]:
    """Ways to map the architecture's stages onto the space's, in order, leaving out only space
    stages that may have depth 0; yields, per space stage, how many kept stages precede it."""

    def walk(i: int, j: int, prev_dim: Any, before: list[int]) -> Iterator[list[int]]:
        if i == len(space):
            if j == len(stages):
                yield [*before, j]
            return
        node = space[i]
        local = {**env, "stage": node.number}
        if prev_dim is not None:
            local["prev_dim"] = prev_dim
        if node.optional and node.depth.holds(0, local):
            yield from walk(i + 1, j, prev_dim, [*before, j])
        if j < len(stages) and _stage_holds(node, stages[j], local):
            yield from walk(i + 1, j + 1, stages[j]["dim"], [*before, j])

    yield from walk(0, 0, None, [])


def _stage_holds(node: StageNode, stage: dict[str, Any], env: dict[str, Any]) -> bool:
    if not node.depth.holds(stage["depth"], env):
        return False
    env = {**env, "depth": stage["depth"]}
    if node.dim is not None and not node.dim.holds(stage["dim"], env):
        return False
    env["dim"] = stage["dim"]
    if not layer_holds(node.block, stage["block"], env):
        return False
    if node.downsample is None or stage["downsample"] is None:
        return node.downsample is None and stage["downsample"] is None
    return layer_holds(node.downsample, stage["downsample"], env)


def layer_holds(choice: LayerChoice, layer: Mapping[str, Any], env: Mapping[str, Any]) -> bool:
    """Whether one of the alternatives gives ``layer`` (a resolved {type, params} dict)."""
    for alt in choice.alternatives:
        if alt.type != layer["type"]:
            continue
        given: dict[str, Value] = dict(alt.params)
        info = lookup(choice.kind, alt.type)  # type: ignore[arg-type]
        ok = True
        for param in info.params:
            value = layer["params"].get(param.name)
            if param.name in given:
                ok = given[param.name].holds(value, env)
            else:
                ok = same(value, param.default)
            if not ok:
                break
        if ok:
            return True
    return False


def _tokens_hold(tree: SpaceTree, tokens: Mapping[str, Any], kept_before: list[int], env: dict[str, Any]) -> bool:
    assert tree.tokens is not None
    nodes = dict(tree.tokens)
    for key in ("cls_token", "pos_embed"):
        if not nodes[key].holds(tokens.get(key), env):
            return False
    target = tokens.get("cls_token_stage", 0)
    return any(kept == target and nodes["cls_token_stage"].holds(s, env) for s, kept in enumerate(kept_before))
