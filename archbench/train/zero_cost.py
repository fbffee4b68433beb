"""Zero-cost (training-free) proxies: scores of an untrained network on one batch that rank
architectures without training them, as every search trial records next to its proxy's accuracy.

- ``synflow``: Tanaka et al., "Pruning neural networks without any data by iteratively conserving
  synaptic flow", NeurIPS 2020.
- ``nwot``: Mellor et al., "Neural Architecture Search without Training", ICML 2021 (NASLib's
  ``nwot``; the paper's first version scored the Jacobian covariance, ``jacov``).
- ``snip``: Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019.
- ``grad_norm``, and per-parameter pruning scores summed over a network as architecture scores:
  Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.

The definitions are those of the reference implementations (SamsungLabs' zero-cost-nas, NASLib's
pruners), written anew:

- **Scored weights.** ``synflow``, ``snip`` and ``grad_norm`` sum over the weights of every
  ``nn.Conv2d`` and ``nn.Linear`` (subclasses included), as the references do. Biases, norm
  scales, position embeddings, class tokens, layer scales and other free parameters are not scored,
  though gradients flow through them.
- **Modes.** Each score runs on a deep copy of the model (the model given is never touched) in eval
  mode, so dropout, attention dropout and drop-path are off and a score is a function of the weights
  and the batch alone; BatchNorm layers run in training mode (the batch's statistics), as in the
  freshly built networks the references score. LayerNorm, GroupNorm and other per-sample norms
  behave as in any forward pass.
- **synflow** linearises the network: the copy goes to float64, every parameter is replaced by its
  absolute value (buffers, e.g. attention masks, keep theirs; working on a copy stands in for the
  references' saving and restoring of the signs), BatchNorm layers are removed (made identities, the
  references' ``bn=False``: with one input there are no batch statistics, and a data-free score must
  not depend on a batch), and per-sample norms (LayerNorm, GroupNorm) stay, as in the references,
  with their absolute-valued affine parameters. ``R = sum(f(1))`` for an all-ones input of one
  example; the score is ``sum |θ ⊙ ∂R/∂θ|`` over the scored weights (the absolute value taken per
  element, as the references do). A LayerNorm centres its input, so the flow is no longer positive
  everywhere: a ReLU after a block whose output is negative passes nothing, and the score is then 0
  (1 of 40 sampled ``hybrid_vit`` proxies; removing every norm would avoid it, at the price of
  departing from the references and of scores spread over 18 orders of magnitude).
- **nwot** records, for every rectifier-like activation module, the binary code ``input > 0`` of each
  example (all units of the layer, flattened), and sums the kernels ``K = c cᵀ + (1 − c)(1 − c)ᵀ``
  (units where two examples agree) over the layers; the score is ``log det K``. NASLib hooks modules
  whose type name contains ``ReLU``; the blocks here mostly use GELU, so the hooked set is the ReLU
  family plus GELU, SiLU/Swish, Mish, Hardswish and the ELUs (torch's and timm's): for GELU and SiLU,
  ``x Φ(x)`` and ``x σ(x)``, the sign of the input is the side of the soft kink, the analogue of a
  ReLU's linear region. Gates (sigmoid, softmax, tanh) are not rectifiers and are not hooked.
- **grad_norm** is ``sum ‖∂L/∂W‖₂`` and **snip** ``sum |W ⊙ ∂L/∂W|`` (the gradient of SNIP's
  connection mask at 1), with ``L`` the mean cross-entropy of the batch (no label smoothing).

A score that is not finite (a singular ``nwot`` kernel: two examples with the same codes, or no
hooked activation; a synflow overflow) is None.

``fisher`` and ``grasp`` (also in Abdelfattah et al.) are left out. Fisher is a per-channel score of
activation × gradient summed over the spatial positions of a conv map; for the (batch, tokens,
channels) Linear layers of attention and MLP blocks the reference sums over channels instead, so it
is not well-defined across the hybrids' two layouts without a choice the papers do not make. GraSP
needs a Hessian-gradient product (a second backward pass through the graph), which costs about
three of snip's passes and which the fused attention kernels on CUDA do not support. In Abdelfattah
et al.'s comparison both ranked architectures worse than synflow and the activation-pattern score.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.GELU(), nn.Linear(8, 3))
    >>> images, labels = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    >>> scores = zero_cost_scores(net, images, labels)
    >>> list(scores)
    ['synflow', 'synflow_seconds', 'nwot', 'nwot_seconds', 'grad_norm', 'grad_norm_seconds', 'snip', 'snip_seconds']
    >>> scores["synflow"] > 0 and scores["grad_norm"] > 0
    True
"""
from __future__ import annotations

import copy
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archbench.errors import UserError
from archbench.objectives import ZERO_COST_SIGNALS
from archbench.train.data import iterate_batches
from archbench.train.loop import _model, _run_settings

if TYPE_CHECKING:
    from archbench.spec import ArchSpec
    from archbench.train.config import TrainConfig
    from archbench.train.data import Dataset

# Layers whose weights the scores sum over (the references' choice).
SCORED_LAYERS = (nn.Conv2d, nn.Linear)
# Activation modules nwot hooks, by type name so timm's own GELU, Swish, … count too.
RECTIFIERS = frozenset(
    {
        "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU",
        "GELU", "GELUTanh", "QuickGELU", "SiLU", "Swish", "Mish", "Hardswish", "HardSwish",
    }
)


def synflow(model: nn.Module, images: torch.Tensor) -> float | None:
    """Synaptic flow of ``model`` (Tanaka et al., 2020): ``sum |θ ⊙ ∂R/∂θ|`` over the scored
    weights of the linearised float64 copy, ``R`` the summed output for one all-ones input.

    Only the shape and device of ``images`` matter (the score is data-free).
    """
    net = _copy(model, batchnorm=False).double()
    weights = _scored_weights(net)
    if not weights:
        return 0.0
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    flow = net(ones).sum()
    grads = torch.autograd.grad(flow, weights, allow_unused=True)
    return _total([(w * g).abs().sum() for w, g in zip(weights, grads) if g is not None])


def nwot(model: nn.Module, images: torch.Tensor) -> float | None:
    """Mellor et al.'s (2021) score: ``log det K``, with ``K[i, j]`` the number of rectifier units
    on which examples ``i`` and ``j`` of ``images`` are on the same side of zero (summed over layers).

    None when ``K`` is singular (two examples with the same codes) or no activation was hooked.
    """
    net = _copy(model, batchnorm=True)
    n = images.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=images.device)

    def add_codes(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = inputs[0].detach().reshape(n, -1) > 0  # every layout here keeps the batch leading
        units = codes.shape[1]
        # c cᵀ + (1 − c)(1 − c)ᵀ = 2 c cᵀ − s 1ᵀ − 1 sᵀ + units (s: ones per row): one product.
        # Its entries are integer counts <= units, exact in float32 below 2**24.
        c = codes.to(torch.float32 if units < 2**24 else torch.float64)
        agree = (c @ c.T).double()
        ones = c.sum(dim=1, dtype=torch.float64)
        kernel.add_(2 * agree - ones[:, None] - ones[None, :] + units)

    handles = [m.register_forward_hook(add_codes) for m in net.modules() if type(m).__name__ in RECTIFIERS]
    if not handles:
        return None
    with torch.no_grad():
        net(images)
    sign, logdet = torch.linalg.slogdet(kernel.cpu())
    return float(logdet) if sign > 0 and math.isfinite(float(logdet)) else None


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """``sum ‖∂L/∂W‖₂`` over the scored weights, ``L`` the batch's mean cross-entropy at init."""
    _, grads = _loss_gradients(model, images, labels)
    return _total([g.norm() for g in grads if g is not None])


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """SNIP's connection sensitivity summed over the scored weights: ``sum |W ⊙ ∂L/∂W|``."""
    weights, grads = _loss_gradients(model, images, labels)
    return _total([(w * g).abs().sum() for w, g in zip(weights, grads) if g is not None])


_SIGNALS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float | None]] = {
    "synflow": lambda model, images, labels: synflow(model, images),
    "nwot": lambda model, images, labels: nwot(model, images),
    "grad_norm": grad_norm,
    "snip": snip,
}


def zero_cost_scores(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, signals: Sequence[str] = ZERO_COST_SIGNALS
) -> dict[str, float | None]:
    """Each of ``signals`` on ``model`` at its current weights: ``{name: value, name_seconds: s}``.

    ``images`` (normalised float, on the model's device) and ``labels`` are one batch; ``model`` is
    not changed (weights, buffers, gradients, modes and ``requires_grad`` flags). A value is a
    finite float or None; the seconds are the wall time of that signal alone, its copy included.

    Raises:
        ValueError: a name in ``signals`` that is not one of :data:`ZERO_COST_SIGNALS`.
    """
    unknown = [s for s in signals if s not in _SIGNALS]
    if unknown:
        raise UserError(f"unknown zero-cost signal(s) {', '.join(unknown)} (choose from {', '.join(ZERO_COST_SIGNALS)})")
    scores: dict[str, float | None] = {}
    for name in signals:
        start = time.perf_counter()
        scores[name] = _SIGNALS[name](model, images, labels)
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        scores[f"{name}_seconds"] = time.perf_counter() - start
    return scores


def zero_cost_of(
    proxy: ArchSpec | nn.Module, data: Dataset, config: TrainConfig, *, signals: Sequence[str] = ZERO_COST_SIGNALS
) -> dict[str, float | None]:
    """:func:`zero_cost_scores` of ``proxy`` built and initialised as ``train_proxy(proxy, data,
    config)`` would, on the first training batch that run would draw (``config.batch_size`` images
    chosen by ``config.seed``), on ``config``'s device and threads.

    Global RNG and thread settings are restored on return; the same config gives the same scores.
    An ArchSpec is built afresh; a module is scored as it is (moved to the device, as
    ``train_proxy`` moves it, and otherwise unchanged).

    Example:
        >>> from archbench import zoo
        >>> from archbench.train import TrainConfig
        >>> config = TrainConfig(dataset="digits", proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.34, batch_size=32, device="cpu", threads=1)
        >>> data = config.load_dataset()
        >>> proxy = config.proxy_of(zoo.get("deit_ti"), data)
        >>> scores, again = zero_cost_of(proxy, data, config), zero_cost_of(proxy, data, config)
        >>> [scores[name] is not None and scores[name] == again[name] for name in ("synflow", "nwot", "grad_norm", "snip")]
        [True, True, True, True]
    """
    dev = torch.device(config.resolved_device())
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    with _run_settings(dev, config.threads, config.seed):
        model = _model(proxy, data).to(dev)  # seeded as train_proxy seeds it: the same initial weights
        batches = iterate_batches(data.train_x, data.train_y, config.batch_size, generator=torch.Generator().manual_seed(config.seed), drop_last=True)
        images, labels = next(batches)
        return zero_cost_scores(model, data.normalize(images.to(dev)), labels.to(dev), signals=signals)


def zero_cost_record(proxy: ArchSpec | nn.Module, data: Dataset, config: TrainConfig) -> dict[str, Any]:
    """The zero-cost columns of a trial record: :func:`zero_cost_of` and the seconds each took, or,
    when scoring fails (a block the scores cannot run through, out of memory), every column None
    and the reason in ``zero_cost_error``: a score that cannot be computed is missing, the training
    still counts."""
    from archbench.errors import error_line
    from archbench.objectives import ZERO_COST_COLUMNS

    try:
        return zero_cost_of(proxy, data, config)
    except Exception as err:
        return {**dict.fromkeys(ZERO_COST_COLUMNS), "zero_cost_error": error_line(err)}


# ---- helpers ------------------------------------------------------------------------------------
def _copy(model: nn.Module, *, batchnorm: bool) -> nn.Module:
    """A scoring copy: eval mode; BatchNorm in training mode, or removed when ``batchnorm`` is False;
    only the scored weights require gradients."""
    net = copy.deepcopy(model)
    net.eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if batchnorm:
                module.train()
            else:
                parent, _, child = name.rpartition(".")
                setattr(net.get_submodule(parent), child, nn.Identity())
    for param in net.parameters():
        param.requires_grad_(False)
        param.grad = None
    for weight in _scored_weights(net):
        weight.requires_grad_(True)
    return net


def _scored_weights(net: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in net.modules() if isinstance(m, SCORED_LAYERS) and m.weight is not None]


def _loss_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[list[torch.Tensor], tuple[torch.Tensor | None, ...]]:
    net = _copy(model, batchnorm=True)
    weights = _scored_weights(net)
    if not weights:
        return [], ()
    loss = F.cross_entropy(net(images).float(), labels)
    return weights, torch.autograd.grad(loss, weights, allow_unused=True)


def _total(terms: list[torch.Tensor]) -> float | None:
    value = float(torch.stack([t.detach().double() for t in terms]).sum()) if terms else 0.0
    return value if math.isfinite(value) else None


__all__ = ["RECTIFIERS", "SCORED_LAYERS", "ZERO_COST_SIGNALS", "grad_norm", "nwot", "snip", "synflow", "zero_cost_of", "zero_cost_record", "zero_cost_scores"]
