"""Memory of one forward pass: the CUDA allocator's peak on GPU; on CPU, the bytes of activations
(every leaf module's output, what a training step keeps for backward) — the method is recorded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Memory:
    """``peak_bytes`` as measured by ``method``; ``weights_bytes`` are parameters plus buffers."""

    peak_bytes: int
    weights_bytes: int
    method: str
    batch_size: int
    device: str
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def measure_memory(
    model: nn.Module, img_size: int | tuple[int, int], *, batch_size: int = 1, device: str = "cpu", in_chans: int = 3, dtype: str = "float32"
) -> Memory:
    """Peak memory of an inference forward (CUDA) or activation bytes of a forward (CPU), under
    the same autocast ``dtype`` as the latency it is reported beside."""
    from archbench.measure.latency import DTYPES

    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    model = model.to(device).eval()
    weights = sum(_tensor_bytes(t) for t in list(model.parameters()) + list(model.buffers()))
    x = torch.randn(batch_size, in_chans, h, w, device=device)
    use_cuda = device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda" if use_cuda else "cpu", dtype=DTYPES[dtype], enabled=dtype != "float32")
    if use_cuda:
        with torch.inference_mode(), autocast:
            model(x)  # warm-up: cuBLAS/cuDNN workspaces are allocated once, not per forward
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), autocast:
            model(x)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - baseline
        return Memory(
            peak_bytes=int(peak), weights_bytes=weights, method="cuda_allocator_peak_minus_weights", batch_size=batch_size, device=device, dtype=dtype
        )
    # The CPU allocator keeps no statistics; the sum of leaf outputs is deterministic and equals
    # what autograd saves for backward (an upper bound of an inference forward's live set).
    total = 0

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        total += _tensor_bytes(output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad(), autocast:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return Memory(
        peak_bytes=total, weights_bytes=weights, method="cpu_sum_of_leaf_module_outputs", batch_size=batch_size, device=device, dtype=dtype
    )
