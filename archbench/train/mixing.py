"""Data mixing for proxy training, one rule a ``TrainConfig.mix`` value: timm's Mixup/CutMix and the
attention-aware rules of the seed papers, with their papers' default hyper-parameters.

- ``mixup`` / ``cutmix`` (Zhang et al., ICLR 2018; Yun et al., ICCV 2019): timm's ``Mixup``, α 0.8 / 1.0
  as DeiT trains (Touvron et al., ICML 2021) unless ``--mixup`` / ``--cutmix`` give α.
- ``transmix`` (Chen et al., CVPR 2022; github.com/Beckschen/TransMix): DeiT's switch (probability
  0.5) between Mixup α 0.8 and CutMix α 1.0; on CutMix batches the pasted image's label weight is
  (λ_area + λ_attn) / 2, λ_attn the share of the last block's class-token attention (over patches,
  mean of heads) that falls in the pasted box — the official code's ``ratio=0.5`` blend.
- ``tokenmix`` (Liu et al., ECCV 2022; github.com/Sense-X/TokenMix): switch 0.5 between Mixup α 0.8
  and token-level mixing of several separated rectangles (BEiT-style block masking, aspect in
  [0.3, 1/0.3]) covering half the patch grid plus 14/196 of it (``lam_constant`` 0.5,
  ``minimum_tokens`` 14 at 14×14). The paper's activation-based label needs a pre-trained teacher's
  label maps, so the label here is its area-based one: the share of tokens each image holds.
- ``tl-align`` (Xiao et al., 2022; github.com/Euphoria16/TL-Align): token-level CutMix (box on the
  patch grid, λ ~ Beta(1, 1); the release runs mixup 0, cutmix 1.0); each token carries its source's
  label, the class token the area-mixed one, and every attention block maps labels to
  (Ā·labels + labels) / 2 with Ā its head-averaged attention (the residual halves it); the class
  token's label at the end is the target. Inferred: blocks that do not keep attention (an MLP or
  conv block in a hybrid trunk) pass the labels on unchanged.
- ``smmix`` (Chen et al., ICCV 2023; github.com/ChenMnZ/SMMix): switch 0.5 between Mixup α 0.8 and
  self-motivated mixing: an un-mixed forward of the model in eval mode gives its class-token
  attention; a square of side uniform in [0.25, 0.75] × the grid side is cut where the source image
  attends most and pasted where the target attends least; the label is area-based (λ = 1 − s²/N)
  and a KL term pulls the prediction to softmax(λ·z + (1 − λ)·z_flipped) of the un-mixed logits z.
  Inferred/omitted: the fine-grained token-group loss needs a per-region classifier on the model and
  is left out; the loss terms are summed with weight 1 as in the release's engine.

Rules reading attention use the blocks' attention-map protocol (``archbench.blocks._common
.KeepsAttention``). A model without class-token attention (no such block, or no class token) trains
with the same image mixing and area-based labels instead, and ``used`` says ``<rule> (area fallback)``.
Mixed images pair image i with image B-1-i (timm's flip), labels are label-smoothed as timm's.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import cutmix_bbox_and_lam, one_hot
from torch import nn

from archbench.blocks._common import AttentionMap, KeepsAttention

if TYPE_CHECKING:
    from archbench.train.config import TrainConfig

# DeiT's recipe (Touvron et al., 2021), which TransMix, TokenMix and SMMix train with.
DEIT_MIXUP_ALPHA = 0.8
DEIT_CUTMIX_ALPHA = 1.0
SWITCH_PROB = 0.5  # --mixup-switch-prob: CutMix-like batches versus Mixup batches
TRANSMIX_AREA_SHARE = 0.5  # TransMix's released code: λ = (λ_area + λ_attn) / 2
TOKENMIX_MASK_RATIO = 0.5  # TokenMix's lam_constant
TOKENMIX_MIN_TOKENS = 14 / 196  # TokenMix's minimum_tokens at its 14 × 14 grid, as a share
TOKENMIX_MIN_ASPECT = 0.3
TL_ALIGN_ALPHA = 1.0  # TL-Align's release: --cutmix 1.0 (token-level), --mixup 0
SMMIX_SIDE = (0.25, 0.75)  # SMMix's --min_side_ratio, --max_side_ratio
FALLBACK = " (area fallback)"

Forward = Callable[[torch.Tensor], torch.Tensor]


# ---- label arithmetic (pure functions, tested on hand-made maps and masks) --------------------------
def smoothed_one_hot(y: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """timm's smoothed targets: 1 - s + s/K on the label, s/K elsewhere."""
    off = smoothing / num_classes
    return one_hot(y, num_classes, on_value=1.0 - smoothing + off, off_value=off)


def mixed_target(y: torch.Tensor, num_classes: int, lam: torch.Tensor | float, smoothing: float) -> torch.Tensor:
    """``lam`` × (smoothed) label of image i + (1 − lam) × that of image B-1-i; ``lam`` a number or (B,)."""
    y1 = smoothed_one_hot(y, num_classes, smoothing)
    lam_t = torch.as_tensor(lam, dtype=y1.dtype, device=y1.device).reshape(-1, 1)
    return lam_t * y1 + (1.0 - lam_t) * y1.flip(0)


def transmix_lambda(cls_attn: torch.Tensor, pasted: torch.Tensor, area: float) -> torch.Tensor:
    """TransMix's weight of the pasted image (B,): the mean of its area share and of its share of the
    class token's attention. ``cls_attn`` (B, N) over patches, ``pasted`` (N,) or (B, N) in {0, 1}.

    Example:
        >>> lam = transmix_lambda(torch.tensor([[0.1, 0.2, 0.3, 0.4]]), torch.tensor([0.0, 0.0, 0.0, 1.0]), 0.25)
        >>> round(float(lam), 6)  # (0.25 + 0.4) / 2
        0.325
    """
    pasted = pasted.to(cls_attn.dtype).expand_as(cls_attn)
    inside = (cls_attn * pasted).sum(-1)
    total = cls_attn.sum(-1)
    attn_share = inside / total.clamp_min(torch.finfo(cls_attn.dtype).tiny)
    return TRANSMIX_AREA_SHARE * area + (1.0 - TRANSMIX_AREA_SHARE) * attn_share


def tl_align_target(maps: list[AttentionMap], patch_labels: torch.Tensor, cls_label: torch.Tensor) -> torch.Tensor | None:
    """TL-Align's target: labels of the tokens traced through every block's attention,
    ``labels ← (Ā · labels + labels) / 2``; the class token's label after the last block (None when
    no block saw a class token). ``patch_labels`` (B, N_patch, K); ``cls_label`` (B, K) joins the
    tokens where a map first has a class token in front (a class token may join mid-trunk).

    Example:
        Two patches, a class token that attends 3:1 to them, and no other mixing:

        >>> probs = torch.tensor([[[0.0, 0.75, 0.25], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
        >>> patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> tl_align_target([AttentionMap(probs, 1, (1, 2))], patches, torch.tensor([[0.5, 0.5]])).tolist()
        [[0.625, 0.375]]
    """
    labels = patch_labels
    prefix = 0
    for m in maps:
        if m.prefix > prefix:  # the class token joins here with its (area-mixed) label
            labels = torch.cat([cls_label.unsqueeze(1).expand(-1, m.prefix - prefix, -1), labels], dim=1)
            prefix = m.prefix
        labels = (m.probs.to(labels.dtype) @ labels + labels) / 2
    return labels[:, 0] if prefix else None


def box_mask(h: int, w: int, lam: float) -> tuple[torch.Tensor, float]:
    """A CutMix box on an h × w grid (timm's ``cutmix_bbox_and_lam``: side ratio √(1-λ), centre
    uniform, clipped): the (h, w) mask of the pasted cells and the kept share (corrected λ)."""
    (yl, yh, xl, xh), kept = cutmix_bbox_and_lam((h, w), lam, correct_lam=True)
    mask = torch.zeros(h, w)
    mask[yl:yh, xl:xh] = 1.0
    return mask, float(kept)


def tokenmix_mask(h: int, w: int, rng: np.random.Generator, *, ratio: float = TOKENMIX_MASK_RATIO,
                  min_share: float = TOKENMIX_MIN_TOKENS, min_aspect: float = TOKENMIX_MIN_ASPECT) -> torch.Tensor:
    """TokenMix's block mask on an h × w token grid: random rectangles (area uniform up to what is
    left, aspect log-uniform in [min_aspect, 1/min_aspect]) until ratio·N + min_share·N cells are
    covered or ten tries in a row add nothing. Returns the (h, w) mask of the cells taken from the
    other image."""
    n = h * w
    goal = min(n, int(ratio * n) + round(min_share * n))
    mask = np.zeros((h, w), dtype=bool)
    log_aspect = (math.log(min_aspect), math.log(1.0 / min_aspect))
    while mask.sum() < goal:
        left = goal - int(mask.sum())
        added = 0
        for _ in range(10):
            area = rng.uniform(1, left)
            aspect = math.exp(rng.uniform(*log_aspect))
            bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < bh <= h and 0 < bw <= w:
                top, lft = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                new = bh * bw - int(mask[top:top + bh, lft:lft + bw].sum())
                if 0 < new <= left:
                    mask[top:top + bh, lft:lft + bw] = True
                    added = new
                    break
        if not added:
            break
    return torch.from_numpy(mask.astype(np.float32))


def smmix_windows(attn: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SMMix's max-min regions: for attention grids (B, h, w), the top-left corner (row, col) of the
    side × side window of least attention (where to paste) and of most attention (what to cut),
    each (B, 2)."""
    sums = F.avg_pool2d(attn.unsqueeze(1).float(), side, stride=1).flatten(1)  # (B, windows)
    cols = attn.shape[-1] - side + 1
    low, high = sums.argmin(1), sums.argmax(1)
    return torch.stack([low // cols, low % cols], dim=1), torch.stack([high // cols, high % cols], dim=1)


# ---- attention of a model through the protocol ----------------------------------------------------
def attention_blocks(model: nn.Module) -> list[KeepsAttention]:
    """The blocks of ``model`` that can keep their attention map, in forward order."""
    return [m for m in model.modules() if isinstance(m, KeepsAttention)]


@contextlib.contextmanager
def keeping_attention(blocks: list[KeepsAttention]) -> Iterator[list[KeepsAttention]]:
    for b in blocks:
        b.keep_attention, b.last_attention = True, None
    try:
        yield blocks
    finally:
        for b in blocks:
            b.keep_attention = False


def _kept(blocks: list[KeepsAttention]) -> list[AttentionMap]:
    return [b.last_attention for b in blocks if b.last_attention is not None]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def _grid(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    # The token grid is the stem's output: every stem declares its stride (archbench.builder).
    stride = int(getattr(getattr(model, "stem", None), "stride", 16))
    return max(1, x.shape[-2] // stride), max(1, x.shape[-1] // stride)


def _paste(x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """x with the cells of a (h, w) or (B, h, w) grid mask taken from the flipped batch."""
    m = cells.to(x.dtype).to(x.device)
    m = m.reshape(-1, 1, *m.shape[-2:]) if m.dim() == 3 else m[None, None]
    m = F.interpolate(m, size=x.shape[-2:], mode="nearest")
    return x * (1 - m) + x.flip(0) * m


# ---- the rules --------------------------------------------------------------------------------------
class MixRule:
    """One mixing rule: ``loss(model, x, y, forward)`` mixes the batch, runs ``forward`` (the model
    under the loop's autocast) and returns the loss; ``used`` names the rule as it was applied."""

    name = "none"
    reads_attention = False  # a rule that needs class-token attention, else falls back

    def __init__(self, config: TrainConfig, num_classes: int) -> None:
        self.num_classes = num_classes
        self.smoothing = config.label_smoothing
        self.mixup_alpha = config.mixup or DEIT_MIXUP_ALPHA
        self.cutmix_alpha = config.cutmix or DEIT_CUTMIX_ALPHA
        self.used = self.name
        self.checked = not self.reads_attention  # has a forward shown whether the model has class-token attention?

    def fall_back(self) -> None:
        self.used = self.name + FALLBACK

    @property
    def fallen_back(self) -> bool:
        return self.used.endswith(FALLBACK)

    def target(self, y: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        return mixed_target(y, self.num_classes, lam, self.smoothing)

    def check(self, maps: list[AttentionMap]) -> bool:
        """Whether a forward's kept maps carry class-token attention; the first answer stands, so the
        rule a training records is the one every batch used."""
        if not self.checked:
            self.checked = True
            if not maps or maps[-1].prefix == 0:
                self.fall_back()
        return not self.fallen_back

    def mixup_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        lam = float(np.random.beta(self.mixup_alpha, self.mixup_alpha))
        blocks = [] if self.checked else attention_blocks(model)[-1:]
        with keeping_attention(blocks):  # the first batch tells whether the attention rule can apply
            logits = forward(lam * x + (1 - lam) * x.flip(0))
        if blocks:
            self.check(_kept(blocks))
        return soft_cross_entropy(logits, self.target(y, lam))

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        raise NotImplementedError


class TimmMix(MixRule):
    """Mixup and/or CutMix as timm does them (``mix`` none with alphas set keeps the old recipe)."""

    def __init__(self, config: TrainConfig, num_classes: int, mixup: float, cutmix: float) -> None:
        super().__init__(config, num_classes)
        self.used = "+".join(n for n, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0)
        self.mix = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=self.smoothing, num_classes=num_classes)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        x, target = self.mix(x, y)
        return soft_cross_entropy(forward(x), target)


class TransMix(MixRule):
    name = "transmix"
    reads_attention = True

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        if np.random.rand() >= SWITCH_PROB:
            return self.mixup_loss(model, x, y, forward)
        lam = float(np.random.beta(self.cutmix_alpha, self.cutmix_alpha))
        pixels, kept = box_mask(x.shape[-2], x.shape[-1], lam)
        x = _paste(x, pixels)
        blocks = [] if self.fallen_back else attention_blocks(model)[-1:]
        with keeping_attention(blocks):
            logits = forward(x)
        maps = _kept(blocks)
        if not self.check(maps):
            return soft_cross_entropy(logits, self.target(y, kept))
        m = maps[-1]
        cells = F.interpolate(pixels[None, None], size=m.hw, mode="nearest").flatten().to(x.device)
        lam_pasted = transmix_lambda(m.probs[:, 0, m.prefix:], cells, 1.0 - kept)
        return soft_cross_entropy(logits, self.target(y, 1.0 - lam_pasted))


class TokenMix(MixRule):
    name = "tokenmix"

    def __init__(self, config: TrainConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        self.rng = np.random.default_rng(config.seed)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        if np.random.rand() >= SWITCH_PROB:
            return self.mixup_loss(model, x, y, forward)
        cells = tokenmix_mask(*_grid(model, x), self.rng)
        kept = 1.0 - float(cells.mean())
        return soft_cross_entropy(forward(_paste(x, cells)), self.target(y, kept))


class TLAlign(MixRule):
    name = "tl-align"
    reads_attention = True

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        h, w = _grid(model, x)
        lam = float(np.random.beta(TL_ALIGN_ALPHA, TL_ALIGN_ALPHA))
        cells, kept = box_mask(h, w, lam)
        x = _paste(x, cells)
        blocks = [] if self.fallen_back else attention_blocks(model)
        with keeping_attention(blocks):
            logits = forward(x)
        maps = [m for m in _kept(blocks) if m.hw == (h, w) and m.probs.shape[-1] == m.prefix + h * w]
        target = None
        if maps and len(maps) == len(blocks):
            own = smoothed_one_hot(y, self.num_classes, self.smoothing)
            pasted = cells.flatten().to(own.device).reshape(1, -1, 1)
            patch_labels = own.unsqueeze(1) * (1 - pasted) + own.flip(0).unsqueeze(1) * pasted  # (B, N, K)
            target = tl_align_target(maps, patch_labels, self.target(y, kept))
        if not self.check(maps if target is not None else []) or target is None:
            target = self.target(y, kept)
        return soft_cross_entropy(logits, target)


class SMMix(MixRule):
    name = "smmix"
    reads_attention = True

    def __init__(self, config: TrainConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        self.rng = np.random.default_rng(config.seed)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, forward: Forward) -> torch.Tensor:
        if np.random.rand() >= SWITCH_PROB:
            return self.mixup_loss(model, x, y, forward)
        h, w = _grid(model, x)
        blocks = [] if self.fallen_back else attention_blocks(model)[-1:]
        was_training = model.training
        model.eval()
        with keeping_attention(blocks), torch.no_grad():
            plain = forward(x).float()
        model.train(was_training)
        maps = [m for m in _kept(blocks) if m.hw == (h, w)]
        if self.check(maps):
            scores = maps[-1].probs[:, 0, maps[-1].prefix:].reshape(-1, h, w)
        else:  # no class-token attention: random windows, area labels
            scores = torch.from_numpy(self.rng.random((len(x), h, w))).float()
        lo, hi = max(1, int(min(h, w) * SMMIX_SIDE[0])), max(1, int(min(h, w) * SMMIX_SIDE[1]))
        side = int(self.rng.integers(lo, hi + 1))
        paste_at, cut_from = smmix_windows(scores, side)
        x = _move_windows(x, paste_at, cut_from.flip(0), side, (h, w))
        kept = 1.0 - side * side / (h * w)
        logits = forward(x)
        consistency = kept * plain + (1 - kept) * plain.flip(0)
        kl = F.kl_div(F.log_softmax(logits.float(), dim=1), F.softmax(consistency, dim=1), reduction="batchmean")
        return soft_cross_entropy(logits, self.target(y, kept)) + kl


def _move_windows(x: torch.Tensor, paste_at: torch.Tensor, cut_from: torch.Tensor, side: int, grid: tuple[int, int]) -> torch.Tensor:
    """Image i gets, at cell ``paste_at[i]``, the side × side cells of image B-1-i at ``cut_from[i]``."""
    ph, pw = x.shape[-2] // grid[0], x.shape[-1] // grid[1]
    out = x.clone()
    source = x.flip(0)
    for i, ((ty, tx), (sy, sx)) in enumerate(zip(paste_at.tolist(), cut_from.tolist())):
        out[i, :, ty * ph:(ty + side) * ph, tx * pw:(tx + side) * pw] = source[i, :, sy * ph:(sy + side) * ph, sx * pw:(sx + side) * pw]
    return out


RULES: dict[str, type[MixRule]] = {"transmix": TransMix, "tokenmix": TokenMix, "tl-align": TLAlign, "smmix": SMMix}


def mix_rule(config: TrainConfig, num_classes: int) -> MixRule | None:
    """The rule ``config`` trains with (None: no mixing, plain label-smoothed cross-entropy).

    Example:
        >>> from archbench.train.config import TrainConfig
        >>> mix_rule(TrainConfig(), 10) is None, mix_rule(TrainConfig(mix="transmix"), 10).used
        (True, 'transmix')
        >>> mix_rule(TrainConfig(mixup=0.8, cutmix=1.0), 10).used, mix_rule(TrainConfig(mix="mixup"), 10).used
        ('mixup+cutmix', 'mixup')
    """
    if config.mix == "none":
        if config.mixup > 0 or config.cutmix > 0:  # the recipe before --mix: timm's alphas as given
            return TimmMix(config, num_classes, config.mixup, config.cutmix)
        return None
    if config.mix == "mixup":
        return TimmMix(config, num_classes, config.mixup or DEIT_MIXUP_ALPHA, 0.0)
    if config.mix == "cutmix":
        return TimmMix(config, num_classes, 0.0, config.cutmix or DEIT_CUTMIX_ALPHA)
    return RULES[config.mix](config, num_classes)


__all__ = [
    "RULES",
    "MixRule",
    "attention_blocks",
    "box_mask",
    "keeping_attention",
    "mix_rule",
    "mixed_target",
    "smmix_windows",
    "smoothed_one_hot",
    "tl_align_target",
    "tokenmix_mask",
    "transmix_lambda",
]
