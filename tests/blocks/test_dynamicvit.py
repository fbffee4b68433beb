"""DynamicViT token sparsification (Rao et al., NeurIPS 2021): predictor parameters, the real token
drop at inference (and what the MAC counters see of it), Gumbel masking in training, the space."""
from __future__ import annotations

import math

import pytest
import torch

import archbench
import archbench.space as spaces
from archbench.blocks.dynamicvit import (
    DynamicViTBlock,
    pruning_locations,
    softmax_with_policy,
)
from archbench.measure.macs import count_macs, count_macs_meta
from archbench.measure.params import count_params
from archbench.registry import SpecError
from archbench.spec import ArchSpec
from archbench.zoo.dynamicvit import dynamicvit_deit


def small(keep_ratio: float = 0.5, img_size: int = 64) -> ArchSpec:
    data = dynamicvit_deit(64, 2, keep_ratio)
    data["stages"][0]["depth"] = 4
    data["stem"]["params"]["patch_size"] = 8
    return ArchSpec.from_dict({**data, "name": "dynamicvit_small_test", "input": {"img_size": img_size, "num_classes": 10}})


def predictor_params(d: int) -> int:
    # LN + Linear(d, d) | Linear(d, d/2), Linear(d/2, d/4), Linear(d/4, 2)
    return 2 * d + d * d + d + d * (d // 2) + d // 2 + (d // 2) * (d // 4) + d // 4 + (d // 4) * 2 + 2


def sequence_lengths(model: torch.nn.Module, image: torch.Tensor) -> list[int]:
    seen: list[int] = []
    hooks = [b.norm1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1])) for b in model.blocks]
    with torch.no_grad():
        model(image)
    for h in hooks:
        h.remove()
    return seen


def test_params_are_deit_plus_three_predictors() -> None:
    with torch.device("meta"):
        dense = count_params(archbench.build("deit_s"))
        pruned = count_params(archbench.build("dynamicvit_deit_s"))
    assert predictor_params(384) == 241_250
    assert pruned == dense + 3 * predictor_params(384) == 22_774_414


def test_release_locations_and_kept_tokens() -> None:
    assert pruning_locations(12, 3) == [3, 6, 9]  # DeiT
    assert pruning_locations(16, 3) == [4, 8, 12]  # LV-ViT-S
    assert pruning_locations(2, 3) == [1]  # shallow stages prune less often, never before block 0
    model = archbench.build("dynamicvit_deit_s").eval()
    # int(196 · 0.7^k), as the release: 137, 96, 67 patch tokens; + the class token.
    assert sequence_lengths(model, torch.randn(1, 3, 224, 224)) == [197] * 3 + [138] * 3 + [97] * 3 + [68] * 3


def test_dense_keep_ratio_is_deit() -> None:
    model = archbench.build(small(keep_ratio=1.0)).eval()
    assert not any(isinstance(b, DynamicViTBlock) and b.predictor is not None for b in model.blocks)
    assert sequence_lengths(model, torch.randn(1, 3, 64, 64)) == [65] * 4


@pytest.mark.parametrize("img_size", [64, 96])
def test_shapes_backward_and_masking_in_training(img_size: int) -> None:
    torch.manual_seed(0)
    model = archbench.build(small()).train()
    image = torch.randn(2, 3, img_size, img_size)
    tokens = (img_size // 8) ** 2 + 1
    assert sequence_lengths(model, image) == [tokens] * 4  # training masks, it does not drop
    out = model(image)
    assert out.shape == (2, 10)
    aux = [b.auxiliary_loss() for b in model.blocks if b.predictor is not None]
    assert len(aux) == 3 and all(a is not None and a.ndim == 0 for a in aux)
    (out.square().mean() + sum(aux)).backward()
    predictor = model.blocks[1].predictor
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert predictor.out_conv[-2].weight.grad.abs().sum() > 0  # the Gumbel straight-through gradient arrives
    eval_lengths = sequence_lengths(model.eval(), image)
    patches = (img_size // 8) ** 2
    assert eval_lengths == [patches + 1] + [1 + int(patches * 0.5**k) for k in (1, 2, 3)]


def test_softmax_with_policy_blocks_dropped_keys() -> None:
    logits = torch.randn(2, 3, 5, 5)
    ones = torch.ones(2, 5, 1)
    torch.testing.assert_close(softmax_with_policy(logits, ones), logits.softmax(-1), atol=1e-5, rtol=1e-4)
    policy = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0]).reshape(1, 5, 1).expand(2, 5, 1)
    weights = softmax_with_policy(logits, policy)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    assert weights[:, :, [0, 1, 3]][..., [2, 4]].max() < 1e-5  # kept queries ignore dropped keys
    # A dropped query attends to the kept keys and itself, not to the other dropped token.
    assert weights[:, :, 2, 4].max() < 1e-5 and weights[:, :, 2, 2].min() > 1e-3


@pytest.mark.parametrize("img_size", [64, 96])
def test_counters_see_the_reduced_sequences(img_size: int) -> None:
    spec = small()
    count = count_macs(archbench.build(spec), img_size)
    assert count.uncounted_ops == {}
    assert count.matmul_macs == count_macs_meta(lambda: archbench.build(spec), img_size)
    dense = count_macs(archbench.build(small(keep_ratio=1.0)), img_size)
    # The MLPs and qkv/proj scale with the kept tokens: 3 of 4 blocks run on half, a quarter, an eighth.
    assert count.by_operator["scaled_dot_product_attention"] < 0.5 * dense.by_operator["scaled_dot_product_attention"]
    assert count.total < 0.65 * dense.total


@pytest.mark.slow
def test_preset_macs_fall_by_the_published_ratio() -> None:
    pruned = count_macs(archbench.build("dynamicvit_deit_s"), 224)
    dense = count_macs(archbench.build("deit_s"), 224)
    assert pruned.total == 2_987_611_968 and dense.total == 4_608_338_304
    # README: 2.9 GFLOPs against DeiT-S's 4.6, a ratio 0.630; ours 0.648 (within the "2.9" tolerance).
    assert abs(pruned.total / dense.total - 2.9 / 4.6) < 0.02


def test_isotropic_vit_contains_the_preset_and_refuses_bad_ratios() -> None:
    assert spaces.load("isotropic_vit").contains("dynamicvit_deit_s")
    for bad in (0.0, 1.5):
        with pytest.raises(SpecError, match="keep_ratio must be in"):
            small(keep_ratio=bad)


@pytest.mark.slow
def test_proxy_training_adds_the_keep_ratio_loss() -> None:
    # Trains (one epoch of digits at 16 px, 4 patch tokens): it found a 0/0 when every token was dropped.
    from archbench.train import TrainConfig, load_dataset, train_proxy

    data = load_dataset("digits", img_size=16, seed=0)
    spec = small()
    calls: list[float] = []
    original = DynamicViTBlock.auxiliary_loss

    def recording(self: DynamicViTBlock) -> torch.Tensor | None:
        loss = original(self)
        if loss is not None:
            calls.append(float(loss))
        return loss

    DynamicViTBlock.auxiliary_loss = recording  # type: ignore[method-assign]
    try:
        result = train_proxy(spec, data, TrainConfig(epochs=1, seed=0, batch_size=64, lr=3e-3, warmup_epochs=0.2, threads=1, device="cpu"))
    finally:
        DynamicViTBlock.auxiliary_loss = original  # type: ignore[method-assign]
    steps = len(data.train_y) // 64
    assert len(calls) == 3 * steps  # every step, every pruning location
    assert all(0.0 <= c <= 2.0 for c in calls) and math.isfinite(result.val_loss)
