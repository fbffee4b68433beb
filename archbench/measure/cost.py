"""What an architecture costs: unique parameters and MACs per image, from its ArchSpec alone.

``arch_cost`` is the one entry point for constraint checks, profiles, reports and trial records;
the caches (per architecture in memory, per layer in memory and on disk: ``layer_cost``) sit
behind it, so callers never hold a model. ``full_cost`` builds the whole model, to check the sum.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from archbench.measure.macs import COUNTER_NAME, count_macs, count_macs_meta
from archbench.measure.params import count_params, count_params_meta

if TYPE_CHECKING:
    from torch import nn

    from archbench.spec import ArchSpec

__all__ = ["AUDITED_METHOD", "META_COUNTER", "META_METHOD", "Cost", "arch_cost", "clear_cache", "full_cost", "module_cost"]

META_COUNTER = "FlopCounterMode (meta)"
META_METHOD = "meta-device build, matrix products and convolutions counted (FlopCounterMode)"
AUDITED_METHOD = "CPU build, every op with a handle counted (fvcore + archbench handles)"
_FALLBACK_METHOD = "CPU build, fvcore count (meta build failed)"
_CACHE_SIZE = 4096  # entries of a few hundred bytes: a long search's worth of distinct candidates


@dataclass(frozen=True)
class Cost:
    """Parameters and MACs of one architecture at one input size, and how they were counted.

    ``macs`` is per image (one forward pass at batch 1). ``uncounted_ops`` lists ops that carry
    arithmetic yet no counter handled (a count with any is a lower bound); ``ignored_ops`` the ops
    skipped by convention (elementwise, reductions). The meta counter sees matrix products and
    convolutions only, so it reports neither.
    """

    params: int
    macs: int
    method: str = META_METHOD
    counter: str = META_COUNTER
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    ignored_ops: dict[str, int] = field(default_factory=dict)

    @property
    def audited(self) -> bool:
        return self.counter == COUNTER_NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "method": self.method,
            "counter": self.counter,
            "uncounted_ops": dict(self.uncounted_ops),
            "ignored_ops": dict(self.ignored_ops),
        }


_cache: OrderedDict[tuple[str, bool], Cost] = OrderedDict()


def arch_cost(arch: ArchSpec, *, img_size: int | None = None, num_classes: int | None = None, audited: bool = False) -> Cost:
    """Parameters and MACs of ``arch`` at ``img_size`` (default: its own input size).

    Two counters: the default is fast (the model built on the meta device, no weights allocated,
    matrix products and convolutions counted: thousands of candidates a minute), and is what
    space constraints are checked against; ``audited`` builds on CPU and counts every op with
    fvcore and archbench's handles (norms, attention, FFTs), recording what went uncounted: the
    figure `archbench profile`, `reproduce`, reports and trial records give. Either is the exact
    sum of the architecture's layers, each measured once and kept per layer in memory and in the
    user's cache folder (``archbench.measure.layer_cost``): a new architecture made of known
    layers costs a lookup, no model. Results are also cached by the architecture's content hash.

    Args:
        arch: the architecture; its name does not matter, its input size does.
        img_size: count at this resolution instead of ``arch.input.img_size``.
        num_classes: count with this many classes instead of ``arch.input.num_classes``.
        audited: the audited counter instead of the fast one.

    Raises:
        SpecError: a layer refuses the architecture. Any other exception: it does not run at
        this input size (a shape error in the forward pass).

    Example:
        >>> from archbench import zoo
        >>> fast = arch_cost(zoo.get("deit_s"))
        >>> fast.params, fast.macs
        (22050664, 4598882304)
        >>> arch_cost(zoo.get("deit_s"), audited=True).macs  # layer norms counted too
        4608338304
    """
    if img_size is not None or num_classes is not None:
        arch = arch.with_input(img_size=img_size, num_classes=num_classes)
    key = (arch.hash, audited)
    found = _cache.get(key)
    if found is None:
        found = _by_layers(arch, audited)
        _cache[key] = found
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return found


def module_cost(model: nn.Module, img_size: int | tuple[int, int], *, in_chans: int = 3) -> Cost:
    """The audited cost of a model that has no ArchSpec (a timm model, any ``nn.Module``).

    Prefer :func:`arch_cost` whenever there is an ArchSpec: it is cached and needs no model.
    """
    count = count_macs(model, img_size, in_chans=in_chans)
    return Cost(
        params=count_params(model),
        macs=count.total,
        method=AUDITED_METHOD,
        counter=count.counter,
        uncounted_ops=count.uncounted_ops,
        ignored_ops=count.ignored_ops,
    )


def full_cost(arch: ArchSpec, *, img_size: int | None = None, num_classes: int | None = None, audited: bool = False) -> Cost:
    """The same count as :func:`arch_cost`, from the whole model built (no cache): what trial
    records set beside the cached figure, and what the tests hold the per-layer sum to."""
    if img_size is not None or num_classes is not None:
        arch = arch.with_input(img_size=img_size, num_classes=num_classes)
    return _audited(arch) if audited else _meta(arch)


def clear_cache(*, layers: bool = True, disk: bool = False) -> None:
    """Forget every cached cost in this process (after registering a block that replaces another,
    say): the per-architecture memo, and with ``layers`` the per-layer entries held in memory; with
    ``disk`` the per-layer cache file is reopened (its entries are read again when needed)."""
    from archbench.measure import layer_cost

    _cache.clear()
    if disk:
        layer_cost.reset_store()
    elif layers:
        layer_cost.store().clear_memory()


def _by_layers(arch: ArchSpec, audited: bool) -> Cost:
    from archbench.measure.layer_cost import MetaUnsupported, layer_sums

    try:
        sums = layer_sums(arch, audited=audited)
    except MetaUnsupported:
        return _audited(arch) if audited else _meta(arch)  # the whole-model path has its own fallback
    if audited:
        return Cost(params=sums.params, macs=sums.macs, method=AUDITED_METHOD, counter=COUNTER_NAME,
                    uncounted_ops=sums.uncounted_ops, ignored_ops=sums.ignored_ops)
    return Cost(params=sums.params, macs=sums.macs)


def _audited(arch: ArchSpec) -> Cost:
    from archbench.builder import build

    return module_cost(build(arch), arch.input.img_size, in_chans=arch.input.in_chans)


def _meta(arch: ArchSpec) -> Cost:
    import torch

    from archbench.builder import build
    from archbench.registry import SpecError

    try:
        with _skip_meta_init_mode()(), torch.device("meta"):
            model = build(arch)
        params = count_params_meta(lambda: model)
        macs = count_macs_meta(lambda: model, arch.input.img_size, in_chans=arch.input.in_chans)
        return Cost(params=int(params), macs=int(macs))
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001 - only a block that cannot run on meta tensors falls back
        if "meta" not in str(err).lower():
            raise
    # The fallback's counter differs (fvcore counts norms too): the method says so.
    cost = _audited(arch)
    return Cost(params=cost.params, macs=cost.macs, method=_FALLBACK_METHOD, counter=cost.counter,
                uncounted_ops=cost.uncounted_ops, ignored_ops=cost.ignored_ops)


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
