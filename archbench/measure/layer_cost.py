"""The per-layer cost cache: an architecture's parameters and MACs as the exact sum of its layers',
each distinct layer measured once (the lookup-table idea of ProxylessNAS / Once-for-All, made exact).

A layer is keyed by everything its cost can depend on: its type and parameters, the shapes that
reach it, whether a (local, regional) pair is narrowed before it, and each field of its
``BlockContext`` that its factory actually reads (recorded while it is built, so a block that
reads its position in the stage is keyed by it, one that reads only ``block_phase(p)`` by that
phase, and one that reads neither is shared by every position),
plus the modules its stage shares so far (CMT's relative bias is counted by the block that makes
it). Drop-path rates are not part of any key: a layer is measured with drop-path 0, which has no
parameters and no arithmetic at inference. The sum equals the full count to the unit; tests hold
every shipped space and zoo preset to that.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from archbench.builder import BlockContext, adapt, compose
from archbench.measure._layer_store import LayerStore
from archbench.registry import TokenState

if TYPE_CHECKING:
    from archbench.registry import LayerInfo
    from archbench.spec import ArchSpec

__all__ = ["LayerSums", "MetaUnsupported", "layer_sums", "measured_total", "reset_store", "store"]

# Bump when what a stored entry means changes (it is part of the cache file's name).
ENTRY_VERSION = 1
META = "meta"
AUDITED = "audited"

Sig = Any  # a JSON-able description of what flows between layers: shapes, nested for tuples


class MetaUnsupported(RuntimeError):
    """A layer that cannot run on meta tensors (the caller falls back to a whole-model count)."""


@dataclass(frozen=True)
class LayerSums:
    """The per-layer sum for one architecture: totals, and for the audited counter the op tallies."""

    params: int
    macs: int
    uncounted_ops: dict[str, int]
    ignored_ops: dict[str, int]
    layers: int
    measured: int  # layers not found in the cache (measured by this call)
    latency_ms: float | None = None  # the sum of the layers' latencies, when a table was asked for
    timed: int = 0  # layers timed by this call (not in the latency table yet)


_store: LayerStore | None = None
_store_lock = threading.Lock()


def store() -> LayerStore:
    """The process's cache: memory in front of the user's cache file (opened on first use)."""
    global _store
    with _store_lock:
        if _store is None:
            _store = LayerStore.open_default(ENTRY_VERSION)
        return _store


def reset_store(new: LayerStore | None = None) -> None:
    """Use ``new`` (or reopen the default file on next use): tests and `clear_cache` call this."""
    global _store
    with _store_lock:
        _store = new


_measured_total = 0


def measured_total() -> int:
    """Layers this process has measured (cache misses) so far: progress and reports use it."""
    return _measured_total


@dataclass(frozen=True)
class TimingSetup:
    """Where and how layers are timed for the latency table: a table per (machine, device, threads)."""

    device: str = "cpu"
    threads: int = 1
    machine: str = ""  # filled by :func:`archbench.measure.latency_table.timing_setup`

    @property
    def counter(self) -> str:
        return f"latency:{self.machine}:{self.device}:t{self.threads}"


def layer_sums(arch: ArchSpec, *, audited: bool = False, timing: TimingSetup | None = None) -> LayerSums:
    """Parameters and MACs of ``arch`` summed over its layers, each from the cache or measured.

    The meta counter gives the shapes that flow between layers (and the fast count); with
    ``audited`` each layer is also counted by fvcore with archbench's handles, on CPU.

    Raises:
        SpecError: a layer refuses the architecture. MetaUnsupported: a layer does not run on
        meta tensors. Any other exception: a layer does not run on what reaches it.
    """
    global _measured_total
    maker = _CostMaker(store(), arch, audited, timing)
    try:
        compose(arch, maker)
        maker.finish()
    finally:
        _measured_total += maker.measured
    return LayerSums(
        params=maker.params,
        macs=maker.macs,
        uncounted_ops=dict(sorted(maker.uncounted.items())),
        ignored_ops=dict(sorted(maker.ignored.items())),
        layers=maker.layers,
        measured=maker.measured,
        latency_ms=maker.latency_ms if timing is not None else None,
        timed=maker.timed,
    )


# ---- keys ----------------------------------------------------------------------------------------
_CTX_FIELDS = tuple(f.name for f in fields(BlockContext))
_reads: list[set[str]] = []  # one set per factory call being recorded
_PHASE = "block_phase:"  # a read of ctx.block_phase(period), recorded as "block_phase:<period>"


@dataclass(frozen=True)
class _RecordingContext(BlockContext):
    """A BlockContext that notes which fields a block factory reads (dataclasses.replace keeps the
    class, so a factory that derives contexts from it, as RefinerStage does, is recorded too)."""

    def __getattribute__(self, name: str) -> Any:
        if _reads and name in _CTX_FIELDS:
            _reads[-1].add(name)
        return object.__getattribute__(self, name)

    def block_phase(self, period: int) -> int:
        # Recorded as the phase, not the index: every block of that phase shares one entry.
        if _reads:
            _reads[-1].add(f"{_PHASE}{period}")
        return object.__getattribute__(self, "block_index") % period


def _canonical(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    return value


def _key(parts: dict[str, Any]) -> str:
    return json.dumps(_canonical(parts), sort_keys=True, separators=(",", ":"))


@functools.cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def _outside_code(info: LayerInfo) -> str | None:
    """A digest of the file that defines a layer registered outside archbench (archbench's own
    source is in the cache file's fingerprint), so editing a user's block invalidates its entries."""
    module = getattr(info.factory, "__module__", "") or ""
    if module == "archbench" or module.startswith("archbench."):
        return None
    name = f"{module}.{getattr(info.factory, '__qualname__', '')}"
    try:
        own = hashlib.sha256(inspect.getsource(info.factory).encode()).hexdigest()[:16]
        source = inspect.getsourcefile(info.factory)
    except (OSError, TypeError):
        return name
    return f"{name}:{own}:{_file_digest(source) if source else ''}"


def _ctx_values(ctx: BlockContext, read: tuple[str, ...], shared_keys: tuple[str, ...]) -> dict[str, Any]:
    values = {}
    for name in read:
        if name == "stage_shared":
            values[name] = list(shared_keys)  # what the stage's earlier blocks left there
        elif name.startswith(_PHASE):
            values[name] = ctx.block_phase(int(name[len(_PHASE):]))
        elif name == "drop_path":
            values[name] = 0.0  # measured without: no parameters, no arithmetic at inference
        else:
            values[name] = getattr(ctx, name)
    return values


# ---- signatures and inputs -----------------------------------------------------------------------
def _sig(value: Any) -> Sig:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        return {"tuple": [_sig(v) for v in value]}
    if value is None:
        return None
    raise TypeError(f"a layer passed on a {type(value).__name__}; the cost cache follows tensors and tuples of them")


def _make_input(sig: Sig, device: str) -> Any:
    if isinstance(sig, dict):
        return tuple(_make_input(s, device) for s in sig["tuple"])
    return torch.zeros(sig, device=device)


class _TokenBlock(nn.Module):
    """Adapts an isotropic block or head, ``(x, TokenState)``, to tensors in and out (tracers and
    counters take tensors only): the state's grid and prefix are fixed, its attention map flows."""

    def __init__(self, block: nn.Module, hw: tuple[int, int], prefix: int, *, head: bool = False) -> None:
        super().__init__()
        self.block = block
        self.hw, self.prefix, self.head = hw, prefix, head

    def forward(self, x: torch.Tensor, attn: torch.Tensor | None = None) -> Any:
        state = TokenState(hw=self.hw, num_prefix_tokens=self.prefix, attn=attn)
        out = self.block(x, state)
        if self.head:
            return out
        return (out, state.attn) if state.attn is not None else (out,)


class _LocalOnly(nn.Module):
    """A layer whose (local, regional) output the next layer narrows to its local part."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, *args: Any) -> torch.Tensor:
        out = self.layer(*args)
        return out[0] if isinstance(out, tuple) else out


class _PassBlock(nn.Module):
    """Stands in for a block or head in the trunk's own measurement."""

    def forward(self, x: torch.Tensor, tokens: Any = None) -> torch.Tensor:
        return x


class _StrideOnly(nn.Module):
    """Stands in for the stem in the trunk's own measurement (its input is the stem's output)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# ---- measuring one layer -------------------------------------------------------------------------
def _unique_params(module: nn.Module, exclude: set[int]) -> int:
    return sum(p.numel() for p in module.parameters() if id(p) not in exclude)


def _measure(make: Callable[[], nn.Module], inputs: Sig, *, exclude_shared: Callable[[], set[int]], audited: bool) -> dict[str, Any]:
    """One layer's entry: built and run on meta tensors (params, MACs, output shapes, stride), or
    on CPU and counted by fvcore (params, MACs, op tallies)."""
    from archbench.measure.cost import _skip_meta_init_mode
    from archbench.measure.macs import count_macs_on, meta_macs_of

    if audited:
        module = make()
        exclude = exclude_shared()
        args = tuple(_make_input(s, "cpu") for s in inputs)
        count = count_macs_on(module, args)
        return {"params": _unique_params(module, exclude), "macs": count.total,
                "uncounted_ops": count.uncounted_ops, "ignored_ops": count.ignored_ops}
    try:
        with _skip_meta_init_mode()(), torch.device("meta"):
            module = make().eval()
            exclude = exclude_shared()
            args = tuple(_make_input(s, "meta") for s in inputs)
        outputs: list[Any] = []
        macs = meta_macs_of(lambda: outputs.append(module(*args)))
    except NotImplementedError as err:
        raise MetaUnsupported(str(err)) from err
    except RuntimeError as err:
        if "meta" in str(err).lower():
            raise MetaUnsupported(str(err)) from err
        raise
    return {"params": _unique_params(module, exclude), "macs": int(macs), "out": _sig(outputs[0]),
            "stride": int(getattr(module, "stride", 0) or 0)}


def _time_layer(make: Callable[[], nn.Module], inputs: list[Sig], timing: TimingSetup) -> float:
    """Median latency (ms) of one layer at batch 1 on the setup's device and threads: built with its
    real initialisation, fed random inputs of the shapes that reach it, warmed up, timed in rounds."""
    from archbench.measure.latency import measure_latency_on

    torch.manual_seed(0)
    module = make()
    args = tuple(_randn_input(s, timing.device) for s in inputs)
    found = measure_latency_on(module, args, device=timing.device, threads=timing.threads, min_repeats=10,
                               min_seconds=0.1, max_seconds=1.5, rel_tolerance=0.02)
    return float(found.median)


def _randn_input(sig: Sig, device: str) -> Any:
    if isinstance(sig, dict):
        return tuple(_randn_input(s, device) for s in sig["tuple"])
    return torch.randn(sig, device=device)


class _CostMaker:
    """The LayerMaker of the cost cache: each layer is looked up by its key, measured on a miss,
    and summed; shapes are carried from one layer's entry to the next."""

    def __init__(self, cache: LayerStore, arch: ArchSpec, audited: bool, timing: TimingSetup | None = None) -> None:
        self.cache = cache
        self.arch = arch
        self.audited = audited
        self.timing = timing
        self.latency_ms = 0.0
        self.timed = 0
        self._pending: tuple[str, list[Sig], Callable[[], nn.Module], Callable[[], set[int]]] | None = None
        self.params = 0
        self.macs = 0
        self.uncounted: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.layers = 0
        self.measured = 0
        self.flow: Sig = None  # what the last layer passed on
        # Isotropic trunk facts the blocks' inputs depend on.
        self.hw: tuple[int, int] = (0, 0)
        self.cls_before = -1
        self.cls_token = False
        self.block_count = 0
        self.prefix = 0  # prefix tokens the last block saw
        # The current stage: its blocks so far (to rebuild what they share) and the shared keys.
        self.stage_index = -1
        self.stage_blocks: list[tuple[LayerInfo, BlockContext, dict[str, Any]]] = []
        self.shared_keys: set[str] = set()

    # -- the walk
    def stem(self, info: LayerInfo, in_chans: int, dim: int, params: dict[str, Any]) -> int:
        inputs = [[1, in_chans, self.arch.input.img_size, self.arch.input.img_size]]
        key = {"kind": "stem", "type": info.name, "code": _outside_code(info), "in_chans": in_chans, "dim": dim, "params": params, "in": inputs}
        entry = self._layer(key, inputs, lambda: info.factory(in_chans, dim, **params))
        return int(entry["stride"])

    def downsample(self, path: str, info: LayerInfo, in_dim: int, out_dim: int, params: dict[str, Any], *, take_local: bool) -> int:
        inputs = [self.flow]
        key = {"kind": "downsample", "type": info.name, "code": _outside_code(info), "in_dim": in_dim, "out_dim": out_dim, "params": params,
               "take_local": take_local, "in": inputs}
        entry = self._layer(key, inputs, lambda: adapt(info.factory(in_dim, out_dim, **params), take_local))
        return int(entry["stride"]) or 2  # as build: a downsampling layer without a stride halves

    def trunk(self, arch: ArchSpec, stride: int, cls_before: int) -> None:
        from archbench.builder import IsotropicNet

        assert arch.tokens is not None
        inputs = [self.flow]  # the stem's (1, C, h, w)
        self.hw = (int(self.flow[2]), int(self.flow[3]))
        self.cls_before = cls_before
        self.cls_token = bool(arch.tokens.cls_token)
        count = arch.depth
        key = {"kind": "trunk", "tokens": dataclasses.asdict(arch.tokens),
               "dim": arch.stages[0].dim, "img_size": arch.input.img_size, "stride": stride,
               "cls_before": cls_before, "blocks": count, "in": inputs}

        def make() -> nn.Module:
            class Trunk(nn.Module):
                """IsotropicNet with pass-through stem, blocks and head: its class token and position
                embedding, and the glue its forward adds around the blocks."""

                def __init__(self) -> None:
                    super().__init__()
                    self.net = IsotropicNet(arch, _StrideOnly(stride), [_PassBlock() for _ in range(count)], cls_before, _PassBlock())

                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    return self.net(x)

            return Trunk()

        flow = self.flow
        self._layer(key, inputs, make)
        self.flow = flow  # blocks read tokens; their inputs are set per block below

    def block(self, path: str, info: LayerInfo, ctx: BlockContext, params: dict[str, Any], *, take_local: bool) -> None:
        if ctx.stage_index != self.stage_index:
            self.stage_index, self.stage_blocks, self.shared_keys = ctx.stage_index, [], set()
        isotropic = ctx.layout == "isotropic"
        if isotropic:
            inputs, hw, prefix = self._token_inputs(ctx)
        else:
            inputs = [self.flow]
        base = {"kind": "block", "type": info.name, "params": params, "take_local": take_local, "in": inputs,
                "code": _outside_code(info)}
        if isotropic:
            base.update(hw=hw, prefix=prefix)  # the TokenState its forward receives
        shared_before = tuple(sorted(self.shared_keys))
        previous = list(self.stage_blocks)
        device_box: dict[str, Any] = {}

        def make() -> nn.Module:
            # The stage's earlier blocks are rebuilt only to recreate what they left to share.
            shared: dict[str, Any] = {}
            for prev_info, prev_ctx, prev_params in previous if shared_before else ():
                prev_info.factory(replace(prev_ctx, stage_shared=shared, drop_path=0.0), **prev_params)
            device_box["shared"] = shared
            device_box["before"] = set(shared)
            recording = _RecordingContext(**{f: getattr(ctx, f) for f in _CTX_FIELDS if f != "stage_shared"},
                                          stage_shared=shared)
            recording = replace(recording, drop_path=0.0)
            _reads.append(set())
            try:
                block = info.factory(recording, **params)
            finally:
                device_box["read"] = tuple(sorted(_reads.pop()))
            if isotropic:
                return _TokenBlock(block, hw, prefix)
            return adapt(block, take_local)

        def exclude() -> set[int]:
            shared = device_box.get("shared", {})
            return {id(p) for name in device_box.get("before", ()) for p in shared[name].parameters()}

        entry = self._block_layer(base, ctx, shared_before, inputs, make, exclude, device_box)
        self.shared_keys.update(entry.get("adds", ()))
        self.stage_blocks.append((info, ctx, params))
        self.block_count += 1

    def head(self, info: LayerInfo, in_dim: int, num_classes: int, layout: str, params: dict[str, Any], *, take_local: bool) -> None:
        if layout == "isotropic":
            ctx_prefix = 1 if self.cls_token and self.block_count >= self.cls_before else 0
            x = self.flow["tuple"][0] if isinstance(self.flow, dict) else self.flow
            inputs = [x]
            hw = self.hw

            def make() -> nn.Module:
                return _TokenBlock(info.factory(in_dim, num_classes, layout=layout, **params), hw, ctx_prefix, head=True)

            key_extra: dict[str, Any] = {"hw": hw, "prefix": ctx_prefix}
        else:
            inputs = [self.flow]

            def make() -> nn.Module:
                return adapt(info.factory(in_dim, num_classes, layout=layout, **params), take_local)

            key_extra = {}
        key = {"kind": "head", "type": info.name, "code": _outside_code(info), "in_dim": in_dim, "num_classes": num_classes, "layout": layout,
               "params": params, "take_local": take_local, "in": inputs, **key_extra}
        self._layer(key, inputs, make)

    # -- helpers
    def _token_inputs(self, ctx: BlockContext) -> tuple[list[Sig], tuple[int, int], int]:
        prefix = ctx.num_prefix_tokens
        tokens = self.hw[0] * self.hw[1] + prefix
        if isinstance(self.flow, dict):  # a block's (x, attn?) output
            parts = self.flow["tuple"]
            dim = parts[0][-1]
            attn = parts[1] if len(parts) > 1 else None
            # Tokens an earlier block dropped (DynamicViT's inference pruning) stay dropped: the
            # sequence is what the last block passed on, plus any class token inserted since.
            tokens = int(parts[0][1]) + prefix - self.prefix
        else:  # the stem's (1, C, h, w)
            dim, attn = self.flow[1], None
        self.prefix = prefix
        inputs: list[Sig] = [[1, tokens, dim]] + ([attn] if attn is not None else [])
        return inputs, self.hw, prefix

    def _add(self, entry: dict[str, Any], counted: dict[str, Any] | None) -> None:
        self.layers += 1
        if not self.audited:  # the audited figures are added once the layer's consumer is known
            self.params += int(entry["params"])
            self.macs += int(entry["macs"])
        self.flow = entry["out"]

    def _layer(self, key_parts: dict[str, Any], inputs: list[Sig], make: Callable[[], nn.Module]) -> dict[str, Any]:
        key = _key(key_parts)
        entry = self.cache.get(META, key)
        if entry is None:
            entry = _measure(make, inputs, exclude_shared=set, audited=False)
            self.cache.put(META, key, entry)
            self.measured += 1
        counted = self._audited(key, inputs, make, set) if self.audited else None
        self._time(key, inputs, make)
        self._add(entry, counted)
        return entry

    def _block_layer(self, base: dict[str, Any], ctx: BlockContext, shared_before: tuple[str, ...], inputs: list[Sig],
                     make: Callable[[], nn.Module], exclude: Callable[[], set[int]], box: dict[str, Any]) -> dict[str, Any]:
        base_key = _key(base)
        # Each set of context fields this layer's factory was seen to read names one candidate key.
        for read in self.cache.reads(base_key):
            key = _key({**base, "ctx": _ctx_values(ctx, read, shared_before)})
            entry = self.cache.get(META, key)
            if entry is not None:
                counted = self._audited(key, inputs, make, exclude) if self.audited else None
                self._time(key, inputs, make)
                self._add(entry, counted)
                return entry
        entry = _measure(make, inputs, exclude_shared=exclude, audited=False)
        read = box["read"]
        entry["adds"] = sorted(set(box["shared"]) - box["before"])
        key = _key({**base, "ctx": _ctx_values(ctx, read, shared_before)})
        self.cache.add_reads(base_key, read)
        self.cache.put(META, key, entry)
        self.measured += 1
        counted = self._audited(key, inputs, make, exclude) if self.audited else None
        self._time(key, inputs, make)
        self._add(entry, counted)
        return entry

    def _time(self, key: str, inputs: list[Sig], make: Callable[[], nn.Module]) -> None:
        """Add the layer's latency from the table, timing it first when the table lacks it."""
        if self.timing is None:
            return
        found = self.cache.get(self.timing.counter, key)
        if found is None:
            found = {"ms": _time_layer(make, inputs, self.timing)}
            self.cache.put(self.timing.counter, key, found)
            self.timed += 1
        self.latency_ms += float(found["ms"])

    def _audited(self, key: str, inputs: list[Sig], make: Callable[[], nn.Module], exclude: Callable[[], set[int]]) -> None:
        """Queue the layer's audited count until the next layer says what of its output it reads:
        fvcore traces the whole network and drops ops whose results nothing reads, so a layer whose
        (local, regional) pair meets a TakeLocal is counted on its local output only, as there."""
        self.finish(local_only=bool(json.loads(key).get("take_local")))
        self._pending = (key, inputs, make, exclude)

    def finish(self, *, local_only: bool = False) -> None:
        """Count the queued layer (audited), reading only its local output when ``local_only``."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        key, inputs, make, exclude = pending
        akey = f"{key}#local" if local_only else key
        counted = self.cache.get(AUDITED, akey)
        if counted is None:
            build = (lambda: _LocalOnly(make())) if local_only else make
            counted = _measure(build, inputs, exclude_shared=exclude, audited=True)
            self.cache.put(AUDITED, akey, counted)
        self.params += int(counted["params"])
        self.macs += int(counted["macs"])
        self.uncounted.update(counted["uncounted_ops"])
        self.ignored.update(counted["ignored_ops"])
