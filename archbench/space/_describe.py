"""What a space holds, for people: its size (log10 of the number of architectures) and an outline
of its choices that ``archbench space show`` prints as a tree.
"""
from __future__ import annotations

import math
from typing import Any

from archbench.space._schema import Alternative, LayerChoice, SpaceTree, StageNode
from archbench.space._values import Derived, Fixed


def size_log10(tree: SpaceTree) -> float:
    """log10 of the number of distinct assignments (inf when a float range has no step).

    Every decision counts once: alternatives add their sizes, independent decisions multiply, a
    derived value counts its operand, and an isotropic stage of depth 0 drops its block's choices.
    """
    logs = [_log(node.size()) for _, node in tree.vars]
    if tree.dim is not None:
        logs.append(_log(tree.dim.size()))
    logs.append(_log(tree.stem.size()))
    for stage in tree.stages:
        logs.append(_log(_stage_size(stage)))
    logs.append(_log(tree.head.size()))
    if tree.tokens is not None:
        logs.extend(_log(node.size()) for _, node in tree.tokens)
    logs.append(_log(tree.drop_path_rate.size()))
    return sum(logs)


def _stage_size(stage: StageNode) -> float:
    depths = stage.depth.finite_values()
    per_depth = (stage.dim.size() if stage.dim is not None else 1.0) * stage.block.size()
    if stage.downsample is not None:
        per_depth *= stage.downsample.size()
    if depths is None:
        return stage.depth.size() * per_depth
    zero = sum(1 for d in depths if d == 0)
    return (len(depths) - zero) * per_depth + zero


def _log(value: float) -> float:
    return math.inf if math.isinf(value) else math.log10(max(value, 1.0))


def format_size(log10: float) -> str:
    if math.isinf(log10):
        return "∞ (continuous)"
    if log10 < 6:
        return f"{round(10 ** log10):,}"
    return f"10^{log10:.1f}"


# ---- outline ---------------------------------------------------------------------------------
def outline(tree: SpaceTree) -> dict[str, Any]:
    """The space as nested ``{"label": str, "children": [...]}`` nodes, stage by stage."""
    children: list[dict[str, Any]] = []
    if tree.vars:
        children.append(_node("vars (drawn once, shared)", [_node(f"{k}: {v.describe()}") for k, v in tree.vars]))
    if tree.dim is not None:
        children.append(_node(f"dim (whole trunk): {tree.dim.describe()}"))
    children.append(_layer_node("stem", tree.stem))
    previous: StageNode | None = None
    for stage in tree.stages:
        depth = stage.depth.describe()
        if stage.optional:
            depth += " (0 leaves the stage out)"
        parts = [_node(f"depth: {depth}")]
        if stage.dim is not None:
            parts.append(_node(f"dim: {stage.dim.describe()}"))
        if stage.downsample is not None:
            parts.append(_layer_node("downsample", stage.downsample))
        if previous is not None and previous.block == stage.block:
            parts.append(_node(f"block: as stage{previous.number} ({len(stage.block.alternatives)} alternatives)"))
        else:
            parts.append(_layer_node("block", stage.block))
        children.append(_node(f"stage{stage.number}", parts))
        previous = stage
    children.append(_layer_node("head", tree.head))
    if tree.tokens is not None:
        children.append(_node("tokens", [_node(f"{k}: {v.describe()}") for k, v in tree.tokens]))
    if not isinstance(tree.drop_path_rate, Fixed) or tree.drop_path_rate.value:
        children.append(_node(f"drop_path_rate: {tree.drop_path_rate.describe()}"))
    return _node(tree.name, children)


def _layer_node(title: str, choice: LayerChoice) -> dict[str, Any]:
    if len(choice.alternatives) == 1:
        return _node(f"{title}: {_alt_text(choice.alternatives[0])}")
    return _node(f"{title}: one of {len(choice.alternatives)}", [_node(_alt_text(a)) for a in choice.alternatives])


def _alt_text(alt: Alternative) -> str:
    name = alt.type if alt.label == alt.type else f"{alt.label} ({alt.type})"
    params = ", ".join(f"{k} {_value_text(v)}" for k, v in alt.params)
    return f"{name}  {params}" if params else name


def _value_text(value: Any) -> str:
    text = value.describe()
    return text if isinstance(value, Derived) else f"= {text}" if isinstance(value, Fixed) else f"∈ {text}"


def _node(label: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"label": label, "children": children or []}
