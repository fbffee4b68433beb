"""The registry's contract: every registered layer factory takes exactly its ``Param`` schema.

The schema is the one list of a layer's parameters (and their defaults), so a factory may forward
``**params`` to its module rather than restate the list; these tests keep the two from drifting.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import pytest
from torch import nn

from archbench.registry import KINDS, BlockContext, LayerInfo, lookup, names

# What the builder hands every factory besides the spec's params (see ``registry.register``).
CONTEXT_ARGS = {"stem": ("in_chans", "out_dim"), "block": ("ctx",), "downsample": ("in_dim", "out_dim"), "head": ("in_dim", "num_classes", "layout")}
# Valid values for the parameters that have no default (the rest take their schema default).
REQUIRED_VALUES = {"heads": 2, "order": 2, "region": 2, "grid": 8}
DIM = 64

LAYERS = [lookup(kind, name) for kind in KINDS for name in names(kind)]


def _call(info: LayerInfo) -> Callable[..., nn.Module]:
    """``info.factory`` with its context arguments bound, for a small layer at dim 64 on an 8×8 map."""
    if info.kind == "block":
        layout = "pyramid" if "pyramid" in info.layouts else "isotropic"
        ctx = BlockContext(dim=DIM, layout=layout, stage_index=0, block_index=1, stage_depth=2, drop_path=0.1, resolution=(8, 8))
        return lambda **params: info.factory(ctx, **params)
    if info.kind == "head":
        layout = "pyramid" if "pyramid" in info.layouts else "isotropic"
        return lambda **params: info.factory(DIM, 10, layout=layout, **params)
    return lambda **params: info.factory(3 if info.kind == "stem" else DIM, DIM, **params)


def _valid_params(info: LayerInfo) -> dict[str, Any]:
    given = {p.name: REQUIRED_VALUES[p.name] for p in info.params if p.required}
    return info.resolve(given, f"{info.kind}.{info.name}", dim=DIM)


@pytest.mark.parametrize("info", LAYERS, ids=lambda info: f"{info.kind}:{info.name}")
def test_factory_signature_is_context_plus_schema(info: LayerInfo) -> None:
    signature = inspect.signature(info.factory).parameters
    context = CONTEXT_ARGS[info.kind]
    assert tuple(name for name in signature if name in context) == context, f"{info.name}: context arguments"
    schema = {p.name for p in info.params}
    named = {
        name: p for name, p in signature.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in context
    }
    forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
    assert not forwards or set(named) <= schema, f"{info.name}: {set(named) - schema} are not in the schema"
    if not forwards:
        assert set(named) == schema, f"{info.name}: factory takes {sorted(named)}, schema says {sorted(schema)}"
    # Defaults live in the schema only: a factory default would silently shadow or contradict it.
    assert all(p.default is inspect.Parameter.empty for p in named.values()), f"{info.name}: factory defaults"
    # No positional extras: the builder passes the schema by keyword, never by position.
    extra = [n for n, p in signature.items() if n not in context and p.kind is not inspect.Parameter.KEYWORD_ONLY and p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert not extra, f"{info.name}: positional parameters {extra}"


@pytest.mark.parametrize("info", LAYERS, ids=lambda info: f"{info.kind}:{info.name}")
def test_factory_accepts_exactly_the_schema(info: LayerInfo) -> None:
    """Built with the schema's values it works; any unknown key or any missing schema key is a
    TypeError, also where the factory forwards ``**params`` to its module."""
    build = _call(info)
    params = _valid_params(info)
    assert isinstance(build(**params), nn.Module)
    with pytest.raises(TypeError):
        build(**params, not_a_schema_param=1)
    for name in params:
        with pytest.raises(TypeError):
            build(**{k: v for k, v in params.items() if k != name})


def test_no_block_shadows_a_method_of_nn_module() -> None:
    """A block method named like one of nn.Module's (MViT's pooling helper was once `_apply`, which
    `.to()`, `.float()` and `.cuda()` call) breaks every model that holds it, far from the cause."""
    import importlib
    import inspect
    import pkgutil

    from torch import nn

    import archbench.blocks

    meant = {"forward", "extra_repr", "__init__", "train", "reset_parameters", "_load_from_state_dict"}
    module_names = set(dir(nn.Module)) - meant
    clashes = []
    for found in pkgutil.iter_modules(archbench.blocks.__path__):
        module = importlib.import_module(f"archbench.blocks.{found.name}")
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls.__module__ == module.__name__:
                clashes += [f"{module.__name__}.{name}.{attr}" for attr in vars(cls) if attr in module_names and not attr.startswith("__")]
    assert clashes == []
