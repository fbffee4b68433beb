"""MAC counting: fused attention is counted, the second counter agrees, nothing slips through."""
from __future__ import annotations

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis

import archbench
from archbench.measure import count_macs, count_macs_meta


def test_deit_s_counts_attention_that_plain_fvcore_misses():
    model = archbench.build("deit_s")
    ours = count_macs(model, 224)
    plain = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, 224, 224))
    plain.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert plain.total() == pytest.approx(4.25e9, rel=0.005)  # the undercount of the pitfall notes
    assert ours.total == pytest.approx(4.60e9, rel=0.005)
    # QKᵀ and AV: 2 · heads · N² · head_dim per block, 12 blocks, N = 197.
    assert ours.by_operator["scaled_dot_product_attention"] == 12 * 2 * 197 * 197 * 384
    assert ours.uncounted_ops == {}


def test_matrix_products_equal_flop_counter_mode_on_meta():
    ours = count_macs(archbench.build("deit_ti"), 224)
    assert ours.matmul_macs == count_macs_meta(lambda: archbench.build("deit_ti"), 224)


def test_independent_count_of_timm_model_matches_ours():
    independent = count_macs_meta(lambda: timm.create_model("deit_small_patch16_224"), 224)
    ours = count_macs(archbench.build("deit_s"), 224).total
    assert ours == pytest.approx(independent, rel=0.01)


def test_unknown_matmul_like_op_is_reported_as_uncounted():
    class Odd(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.kron(x, x).sum() + torch.cdist(x.flatten(1), x.flatten(1)).sum()

    counted = count_macs(Odd(), 4)
    assert set(counted.uncounted_ops) >= {"aten::kron", "aten::cdist"}


def test_macs_scale_with_resolution_for_convolutions(repo):
    arch = archbench.load_arch(str(repo / "examples" / "small_hybrid.yaml"))
    small = count_macs(archbench.build(arch), 112).total
    large = count_macs(archbench.build(arch), 224).total
    assert 3.0 < large / small < 5.0
