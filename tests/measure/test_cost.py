"""`arch_cost`: the one way to count an architecture, fast (meta) or audited, cached by hash."""
from __future__ import annotations

import archbench
from archbench import zoo
from archbench.measure import Cost, arch_cost, count_macs, count_macs_meta, count_params_meta, module_cost, profile
from archbench.measure.cost import META_METHOD, clear_cache
from archbench.space import ESTIMATE_METHOD


def test_fast_cost_is_the_meta_counters_and_audited_is_profiles_figure():
    arch = zoo.get("deit_s")
    fast = arch_cost(arch)
    assert (fast.params, fast.macs) == (22050664, 4598882304)
    assert fast.macs == count_macs_meta(lambda: archbench.build(arch), 224)
    assert fast.params == count_params_meta(lambda: archbench.build(arch))
    audited = arch_cost(arch, audited=True)
    assert (audited.params, audited.macs) == (22050664, 4608338304)  # layer norms counted too
    assert audited.audited and not fast.audited and audited.uncounted_ops == {}
    assert (profile(arch, latency=False, memory=False).macs) == audited.macs


def test_cost_is_cached_by_content_hash_and_follows_the_input_size():
    clear_cache()
    arch = zoo.get("deit_ti")
    first = arch_cost(arch)
    renamed = arch.__class__(**{**arch.__dict__, "name": "another"})
    assert arch_cost(renamed) is first  # the name is not part of the cost
    small = arch_cost(arch, img_size=112)
    assert small.macs < first.macs and small.params < first.params  # fewer position embeddings
    assert arch_cost(arch, img_size=112) is small
    assert arch_cost(arch, num_classes=10).params < first.params


def test_module_cost_of_a_built_model_equals_the_audited_arch_cost():
    arch = zoo.get("deit_ti").with_input(img_size=64)
    model = archbench.build(arch)
    assert module_cost(model, 64) == arch_cost(arch, audited=True)
    assert module_cost(model, 64).macs == count_macs(model, 64).total


def test_cost_serialises_and_the_space_names_the_same_method():
    cost = arch_cost(zoo.get("deit_ti"), img_size=32)
    assert Cost(**cost.to_dict()) == cost
    assert ESTIMATE_METHOD == META_METHOD == cost.method
