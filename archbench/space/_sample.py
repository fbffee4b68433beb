"""Turning a space into one architecture: decisions come from a seed (a hash per parameter name,
the same on every machine) or from an Optuna trial (define-by-run, hierarchical names).

Only the parameters of the alternatives chosen are drawn, so Optuna sees conditional parameters
(``stage2.block.type`` then ``stage2.block.gnconv.order``) exactly as the space defines them.
"""
from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any, Sequence

from archbench.registry import SpecError
from archbench.space._schema import LayerChoice, SpaceTree
from archbench.space._values import InvalidSample, option_key

if TYPE_CHECKING:
    import optuna

    from archbench.spec import ArchSpec


class SeededSource:
    """Decisions from ``sha256(seed, attempt, parameter name)``: reproducible on any machine and
    stable under edits elsewhere in the space (a parameter's draw depends only on its own name)."""

    def __init__(self, seed: int, attempt: int = 0) -> None:
        self.prefix = f"archbench-space/{int(seed)}/{int(attempt)}/"

    def uniform(self, name: str) -> float:
        digest = hashlib.sha256((self.prefix + name).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def categorical(self, name: str, options: Sequence[Any]) -> Any:
        return options[min(int(self.uniform(name) * len(options)), len(options) - 1)]

    def integer(self, name: str, lo: int, hi: int, step: int) -> int:
        count = (hi - lo) // step + 1
        return lo + step * min(int(self.uniform(name) * count), count - 1)

    def real(self, name: str, lo: float, hi: float, *, log: bool, step: float | None) -> float:
        u = self.uniform(name)
        if step is not None:
            count = math.floor((hi - lo) / step + 1e-9) + 1
            return lo + step * min(int(u * count), count - 1)
        if log:
            return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        return lo + u * (hi - lo)


class TrialSource:
    """Decisions from an Optuna trial; list-valued options are offered to Optuna as JSON text."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def categorical(self, name: str, options: Sequence[Any]) -> Any:
        keys = [option_key(o) for o in options]
        picked = self.trial.suggest_categorical(name, keys)
        return options[keys.index(picked)]

    def integer(self, name: str, lo: int, hi: int, step: int) -> int:
        return int(self.trial.suggest_int(name, lo, hi, step=step))

    def real(self, name: str, lo: float, hi: float, *, log: bool, step: float | None) -> float:
        return float(self.trial.suggest_float(name, lo, hi, log=log, step=step))


def realize(tree: SpaceTree, source: Any) -> tuple[dict[str, Any], list[int]]:
    """One architecture as an ArchSpec dict (not yet validated by the registry's own checks) and
    the space's stage numbers of the stages it kept."""
    env: dict[str, Any] = {"img_size": tree.target.img_size}
    for name, node in tree.vars:
        env[name] = node.draw(source, f"vars.{name}", env)
    trunk_dim = tree.dim.draw(source, "dim", env) if tree.dim is not None else None

    stages: list[dict[str, Any]] = []
    numbers: list[int] = []
    kept_before: list[int] = []  # ArchSpec stages before each space stage (isotropic stages may drop out)
    prev_dim: Any = None
    for stage in tree.stages:
        kept_before.append(len(stages))
        prefix = f"stage{stage.number}"
        local = {**env, "stage": stage.number}
        if prev_dim is not None:
            local["prev_dim"] = prev_dim
        depth = _whole(stage.depth.draw(source, f"{prefix}.depth", local), f"{prefix}.depth", 0 if tree.layout == "isotropic" else 1)
        if depth == 0:
            continue  # the stage is left out: none of its parameters exist in this sample
        local["depth"] = depth
        dim = trunk_dim if stage.dim is None else stage.dim.draw(source, f"{prefix}.dim", local)
        dim = _whole(dim, "dim" if stage.dim is None else f"{prefix}.dim", 1)
        local["dim"] = dim
        stages.append(
            {
                "depth": depth,
                "dim": dim,
                "block": draw_layer(stage.block, source, f"{prefix}.block", local),
                "downsample": None if stage.downsample is None else draw_layer(stage.downsample, source, f"{prefix}.downsample", local),
            }
        )
        numbers.append(stage.number)
        prev_dim = dim
    kept_before.append(len(stages))
    if not stages:
        raise InvalidSample("stages", "every stage has depth 0: no blocks left")

    arch: dict[str, Any] = {
        "layout": tree.layout,
        "input": {"img_size": tree.target.img_size, "in_chans": tree.target.in_chans, "num_classes": tree.target.num_classes},
        "stem": draw_layer(tree.stem, source, "stem", {**env, "dim": stages[0]["dim"]}),
        "stages": stages,
        "head": draw_layer(tree.head, source, "head", {**env, "dim": stages[-1]["dim"]}),
        "drop_path_rate": tree.drop_path_rate.draw(source, "drop_path_rate", env),
    }
    if tree.tokens is not None:
        tokens = {key: node.draw(source, f"tokens.{key}", env) for key, node in tree.tokens}
        tokens["cls_token_stage"] = kept_before[tokens["cls_token_stage"]]
        arch["tokens"] = tokens
    return arch, numbers


def draw_layer(choice: LayerChoice, source: Any, name: str, env: dict[str, Any]) -> dict[str, Any]:
    alternatives = choice.alternatives
    if len(alternatives) == 1:
        alt = alternatives[0]
    else:
        label = source.categorical(f"{name}.type", [a.label for a in alternatives])
        alt = next(a for a in alternatives if a.label == label)
    params = {key: node.draw(source, f"{name}.{alt.label}.{key}", env) for key, node in alt.params}
    return {"type": alt.type, "params": params}


def _whole(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidSample(name, f"expected an integer >= {minimum}, got {value!r}")
    return value


def to_arch(data: dict[str, Any], numbers: list[int], name: str) -> ArchSpec:
    """Validate a realized dict as an ArchSpec; registry objections become InvalidSample.

    ``numbers`` are the space's stage numbers of the stages kept, for naming the culprit.
    """
    from archbench.spec import ArchSpec

    try:
        return ArchSpec.from_dict({"name": name, **data})
    except SpecError as err:
        raise InvalidSample(_space_name(numbers, err.path), err.message) from None


def _space_name(numbers: list[int], path: str) -> str:
    # ArchSpec paths count kept stages from 0 (stages[2].block); parameter names count space stages from 1.
    if path.startswith("stages[") and "]" in path:
        index = int(path[len("stages["): path.index("]")])
        rest = path[path.index("]") + 1:]
        number = numbers[index] if index < len(numbers) else index + 1
        return f"stage{number}{rest}"
    return path
