"""Property tests over the shipped spaces: every sample is a valid ArchSpec that round-trips through
its dict (and JSON, YAML) with the same hash, is contained in its space, builds and runs forward."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archbench.space as spaces
from archbench.builder import build
from archbench.spec import ArchSpec

SHIPPED = ["hybrid_vit", "isotropic_vit", "tiny_cpu"]
# Small input sizes at which every sample of the space runs (hybrid_vit's stage 4 keeps a 4x4 map,
# enough for its largest key/value reduction there).
FORWARD_SIZE = {"hybrid_vit": 128, "isotropic_vit": 64, "tiny_cpu": 64}
SEEDS = st.integers(min_value=0, max_value=2**63 - 1)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _round_trips(space: spaces.Space, arch: ArchSpec) -> None:
    again = ArchSpec.from_dict(arch.to_dict())
    assert again == arch and again.hash == arch.hash
    assert ArchSpec.from_dict(json.loads(arch.to_json())).hash == arch.hash
    assert ArchSpec.from_dict(yaml.safe_load(arch.to_yaml())).hash == arch.hash


def _runs(arch: ArchSpec, size: int) -> None:
    model = build(arch, img_size=size, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, arch.input.in_chans, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_samples_are_valid_round_trip_and_are_contained(name: str) -> None:
    space = spaces.load(name)

    @_settings(200)
    @given(seed=SEEDS)
    def check(seed: int) -> None:
        arch = space.sample(seed, constrained=False)
        _round_trips(space, arch)
        assert space.sample(seed, constrained=False) == arch  # the seed decides everything
        assert space.contains(arch)
        assert (arch.input.img_size, arch.input.num_classes) == (space.target.img_size, space.target.num_classes)

    check()


def test_tiny_cpu_samples_build_and_run() -> None:
    space = spaces.load("tiny_cpu")

    @_settings(200)
    @given(seed=SEEDS)
    def check(seed: int) -> None:
        _runs(space.sample(seed, constrained=False), FORWARD_SIZE["tiny_cpu"])

    check()


@pytest.mark.parametrize("name", ["hybrid_vit", "isotropic_vit"])
def test_a_few_samples_of_the_large_spaces_build_and_run(name: str) -> None:
    space = spaces.load(name)
    for seed in range(3):
        _runs(space.sample(seed, constrained=False), FORWARD_SIZE[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hybrid_vit", "isotropic_vit"])
def test_every_sample_of_the_large_spaces_builds_and_runs(name: str) -> None:
    # Full widths and depths, weights initialised, one forward pass each: ~0.2-0.5 s a sample on a
    # 2-core CPU, so 100 derandomised draws (half of the cheaper properties' 200) keep the suite
    # within its budget; the draws are fixed, so a failure reproduces.
    space = spaces.load(name)

    @_settings(100)
    @given(seed=SEEDS)
    def check(seed: int) -> None:
        _runs(space.sample(seed, constrained=False), FORWARD_SIZE[name])

    check()


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_constrained_samples_build_at_the_target_size_and_meet_the_budget(name: str) -> None:
    space = spaces.load(name)
    for seed in range(8):
        arch = space.sample(seed)
        found = space.estimate(arch)  # a meta-device forward pass at the target size
        assert space.check_constraints(found.params, found.macs) is None
