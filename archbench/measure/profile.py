"""`profile`: parameters, audited MACs, latency and memory of one architecture, with provenance.

Accepts an ArchSpec, a zoo name, a spec file, ``timm:MODEL`` (any timm model, built without
weights) or an ``nn.Module``; params and MACs come from ``arch_cost`` (``module_cost`` without a spec).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from archbench._validate import BATCH_WHY, IMG_SIZE_WHY, MAX_BATCH, MAX_IMG_SIZE, option_in_range
from archbench.errors import UserError
from archbench.measure.cost import arch_cost, module_cost
from archbench.measure.latency import DTYPES, Latency, measure_latency
from archbench.measure.memory import Memory, measure_memory
from archbench.measure.provenance import provenance
from archbench.registry import SpecError
from archbench.spec import ArchSpec


@dataclass(frozen=True)
class Profile:
    """Everything measured about one model at one resolution."""

    name: str
    img_size: int
    params: int
    macs: int
    flops_counter: str
    uncounted_ops: dict[str, int]
    ignored_ops: dict[str, int]
    latency: Latency | None
    memory: Memory | None
    provenance: dict[str, Any] = field(default_factory=dict)
    arch_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "img_size": self.img_size,
            "params": self.params,
            "macs": self.macs,
            "gmacs": round(self.macs / 1e9, 4),
            "flops_counter": self.flops_counter,
            "uncounted_ops": self.uncounted_ops,
            "ignored_ops": self.ignored_ops,
            "latency_ms": self.latency.to_dict() if self.latency else None,
            "memory": self.memory.to_dict() if self.memory else None,
            "arch_hash": self.arch_hash,
            "provenance": self.provenance,
        }


def resolve_model(target: ArchSpec | nn.Module | str, *, img_size: int | None = None) -> tuple[str, nn.Module, int, str | None]:
    """(name, model, img_size, arch hash) for any accepted target; bad names raise SpecError."""
    from archbench.builder import build

    name, arch, model, size = _resolve(target, img_size)
    if arch is not None:
        check_buildable(arch, target if isinstance(target, str) else name, img_size=size)
    return name, model if model is not None else build(arch, img_size=size), size, arch.hash if arch else None


def _resolve(target: ArchSpec | nn.Module | str, img_size: int | None) -> tuple[str, ArchSpec | None, nn.Module | None, int]:
    # An ArchSpec is not built here: its cost comes from arch_cost, a model only when it is timed.
    from archbench.builder import load_arch

    if isinstance(target, nn.Module):
        return type(target).__name__, None, target, img_size or 224
    if isinstance(target, str) and target.startswith("timm:"):
        name, model, size, _ = _timm_model(target[len("timm:"):], img_size)
        return name, None, model, size
    arch = load_arch(target) if isinstance(target, str) else target
    return arch.name, arch, None, img_size or arch.input.img_size


def _timm_model(name: str, img_size: int | None) -> tuple[str, nn.Module, int, None]:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:3]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise SpecError("", f"unknown timm model '{name}'{hint}")
    kwargs: dict[str, Any] = {"pretrained": False}
    model = timm.create_model(name, **kwargs)
    default = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    size = img_size or default
    if size != default:
        try:
            model = timm.create_model(name, img_size=size, **kwargs)
        except TypeError:
            pass  # convolutional models take any size without being told
    return f"timm:{name}", model, size, None


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_buildable(arch: ArchSpec, label: str, *, img_size: int | None = None, device: str = "cpu") -> None:
    """Refuse ``arch`` when its float32 weights alone would take more than half of this machine's
    RAM, or (``device`` cuda) more than half of the GPU's memory: one line naming ``label``.

    Counted on the meta device (nothing allocated), before the real build that would otherwise
    allocate until the OS kills the process: every key can lie within its own bound (dim 65536,
    depth 1024) while the whole asks for terabytes. Half: the audited count, the timed model and
    its activations must fit beside the weights.
    """
    reason = too_large_to_build(arch, img_size=img_size, device=device)
    if reason:
        raise SpecError(label, reason)


def too_large_to_build(arch: ArchSpec, *, img_size: int | None = None, device: str = "cpu") -> str | None:
    """Why ``arch`` cannot be built here (see :func:`check_buildable`), or None."""
    from archbench.quantity import format_quantity

    weights = arch_cost(arch, img_size=img_size).params * 4
    limits = [("this machine", physical_memory())]  # the model is always built on the CPU first
    if device.startswith("cuda") and torch.cuda.is_available():
        limits.append((f"{device} ({torch.cuda.get_device_name(device)})", torch.cuda.get_device_properties(device).total_memory))
    for where, memory in limits:
        if memory and weights > memory // 2:
            return (
                f"{format_quantity(weights // 4)} parameters ({format_quantity(weights)}B of float32 weights) "
                f"cannot be built on {where} ({memory / 2**30:.1f} GiB of memory)"
            )
    return None


@contextmanager
def _out_of_memory_as_user_error(name: str, batch_size: int, img_size: int, device: str) -> Iterator[None]:
    """An allocation the user's batch and resolution asked for that fails: their input, one line."""
    try:
        yield
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is one
        text = str(err)
        if not (isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
            raise
        raise UserError(
            f"{name}: out of memory on {device} at batch {batch_size} × {img_size}×{img_size} px "
            "(--batch-size × --img-size): try a smaller batch or resolution"
        ) from None


def check_device(device: str) -> str:
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SpecError("--device", "CUDA was requested but this machine has no CUDA device")
    elif device != "cpu":
        raise SpecError("--device", f"expected cpu or cuda, got '{device}'")
    return device


def profile(
    target: ArchSpec | nn.Module | str,
    *,
    img_size: int | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    latency: bool = True,
    memory: bool = True,
    threads: int | None = None,
    dtype: str = "float32",
) -> Profile:
    """Measure ``target``: unique params, MACs per image, and optionally latency and memory.

    Example:
        >>> p = profile("deit_s", latency=False)
        >>> p.params, round(p.macs / 1e9, 2)
        (22050664, 4.61)
    """
    # Refused before any work: a typo such as batch 1000000000 would otherwise allocate until killed.
    if img_size is not None:
        option_in_range(img_size, "--img-size", 1, MAX_IMG_SIZE, IMG_SIZE_WHY)
    option_in_range(batch_size, "--batch-size", 1, MAX_BATCH, BATCH_WHY)
    check_device(device)
    if dtype not in DTYPES:
        raise SpecError("--dtype", f"expected one of {', '.join(DTYPES)}, got '{dtype}'")
    name, arch, model, size = _resolve(target, img_size)
    if arch is not None:
        check_buildable(arch, target if isinstance(target, str) else name, img_size=size, device=device)
    # Per image: MACs scale linearly with batch.
    cost = arch_cost(arch, img_size=size, audited=True) if arch is not None else module_cost(model, size)  # type: ignore[arg-type]
    lat = mem = None
    if (latency or memory) and model is None:
        from archbench.builder import build

        model = build(arch, img_size=size)  # type: ignore[arg-type]
    with _out_of_memory_as_user_error(name, batch_size, size, device):
        if latency:
            lat = measure_latency(model, size, batch_size=batch_size, device=device, dtype=dtype, threads=threads)
        if memory:
            mem = measure_memory(model, size, batch_size=batch_size, device=device, dtype=dtype)
    return Profile(
        name=name,
        img_size=size,
        params=cost.params,
        macs=cost.macs,
        flops_counter=cost.counter,
        uncounted_ops=dict(cost.uncounted_ops),
        ignored_ops=dict(cost.ignored_ops),
        latency=lat,
        memory=mem,
        provenance=provenance(device, lat.threads if lat else threads),
        arch_hash=arch.hash if arch is not None else None,
    )
