"""The space language as written: values, layers, stage defaults and overrides, ties, extends,
constraints, sizes, and zoo presets / architecture files as spaces of size one."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

import archbench.space as spaces
from archbench import zoo
from archbench.registry import SpecError
from archbench.space._values import Choice, Derived, IntRange, parse_value

REPO = Path(__file__).resolve().parents[2]

SMALL = """\
name: small
layout: pyramid
target: {img_size: 64, num_classes: 10}
constraints: {max_params: 2M, max_macs: 1.5e8}
vars:
  ratio: {choice: [2, 4]}
stem: {type: patchify, params: {patch_size: 4}}
stages:
  default:
    depth: {int: [1, 3]}
    dim: {from: prev_dim, multiply: 2}
    downsample: {type: conv, params: {kernel: {choice: [2, 3]}}}
    block:
      choice:
        - {type: mhsa, params: {heads: {from: dim, divide: 16}, mlp_ratio: {from: ratio}}}
        - {type: gnconv, params: {order: {int: [2, 3]}, mlp_ratio: {from: ratio}}}
        - {type: convnext, params: {kernel: {choice: [3, 5, 7]}}}
  list:
    - dim: {choice: [16, 32]}
      block: {exclude: [mhsa]}
    - repeat: 2
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- values ----------------------------------------------------------------------------------
def test_value_nodes_parse_to_their_kinds() -> None:
    assert isinstance(parse_value({"choice": [1, 2]}, "x"), Choice)
    assert parse_value({"int": [2, 18], "step": 2}, "x") == IntRange(2, 18, 2, "x")
    assert parse_value({"float": [1e-4, 1e-1], "log": True}, "x").size() == math.inf
    assert parse_value({"float": [0, 1], "step": 0.25}, "x").size() == 5
    derived = parse_value({"from": "dim", "divide": {"choice": [32, 64]}, "round": "divisor"}, "x")
    assert isinstance(derived, Derived) and derived.size() == 2


@pytest.mark.parametrize(
    ("source", "operand", "rounding", "expected"),
    [(96, 32, None, 3), (96, 64, "divisor", 2), (160, 64, "divisor", 2), (432, 48, None, 9), (100, 64, "ceil", 2), (100, 64, "floor", 1)],
)
def test_derived_division_and_rounding(source: int, operand: int, rounding: str | None, expected: int) -> None:
    node = Derived("dim", "divide", parse_value(operand, "x"), rounding)
    assert node.apply(source, operand) == expected


def test_derived_division_that_is_not_whole_is_an_invalid_sample() -> None:
    node = Derived("dim", "divide", parse_value(64, "x"))
    with pytest.raises(spaces.InvalidSample, match="not a whole number"):
        node.apply(96, 64)


def test_yaml_reads_exponent_floats_as_numbers(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL.replace("max_macs: 1.5e8", "max_macs: 1e8")))
    assert space.constraints.max_macs == 1e8
    assert space.constraints.max_params == 2e6


# ---- structure -------------------------------------------------------------------------------
def test_defaults_overrides_and_repeat_expand_per_stage(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL))
    tree = space.tree
    assert [s.number for s in tree.stages] == [1, 2, 3]
    assert tree.stages[0].block.labels == ["gnconv", "convnext"]  # exclude applies to stage 1 only
    assert tree.stages[1].block.labels == ["mhsa", "gnconv", "convnext"]
    assert tree.stages[0].downsample is None  # the default downsampling starts at stage 2
    assert tree.stages[2].downsample is not None
    arch = space.sample(0, constrained=False)
    dims = [s.dim for s in arch.stages]
    assert dims[1] == 2 * dims[0] and dims[2] == 2 * dims[1]  # widths double per stage
    ratios = {s.block.params["mlp_ratio"] for s in arch.stages if s.block.type != "convnext"}
    assert len(ratios) <= 1  # one shared var


def test_override_replaces_parameters_of_one_alternative(tmp_path: Path) -> None:
    text = SMALL.replace("block: {exclude: [mhsa]}", "block: {override: {convnext: {kernel: 7}}}")
    space = spaces.load(write(tmp_path, text))
    convnext = dict(space.tree.stages[0].block.alternatives[2].params)
    assert convnext["kernel"].describe() == "7"
    assert dict(space.tree.stages[1].block.alternatives[2].params)["kernel"].describe() == "{3, 5, 7}"


def test_only_keeps_named_alternatives(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL.replace("exclude: [mhsa]", "only: [convnext]")))
    assert space.tree.stages[0].block.labels == ["convnext"]


def test_size_counts_alternatives_and_shared_vars(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL))
    # vars 2 · stage1 [3 depths · 2 dims · (gnconv 2 + convnext 3)] · stages 2, 3 [3 depths · (1 + 2 + 3) · 2 kernels]
    expected = 2 * (3 * 2 * 5) * (3 * 6 * 2) ** 2
    assert space.size_log10 == pytest.approx(math.log10(expected))


def test_isotropic_depth_zero_leaves_the_stage_out(tmp_path: Path) -> None:
    text = """\
layout: isotropic
target: {img_size: 32, num_classes: 10}
dim: {choice: [32, 64]}
stem: {type: patchify, params: {patch_size: 8}}
stages:
  - {depth: {int: [0, 2]}, block: {type: gpsa, params: {heads: {from: dim, divide: 16}}}}
  - {depth: {int: [1, 2]}, block: {type: mhsa, params: {heads: {from: dim, divide: 16}}}}
tokens: {cls_token_stage: 1}
head: {type: linear, params: {pool: cls}}
"""
    space = spaces.load(write(tmp_path, text))
    seen = set()
    for seed in range(40):
        arch = space.sample(seed, constrained=False)
        seen.add(len(arch.stages))
        assert arch.tokens is not None
        assert arch.tokens.cls_token_stage == len(arch.stages) - 1  # after the GPSA stage, if kept
        assert space.contains(arch)
    assert seen == {1, 2}
    # size: 2 dims · [(2 depths · 1) + 1 (left out)] · 2 depths
    assert space.size_log10 == pytest.approx(math.log10(2 * 3 * 2))


def test_map_ties_a_string_to_a_shared_choice(tmp_path: Path) -> None:
    text = """\
layout: isotropic
target: {img_size: 32, num_classes: 10}
vars: {cls: {choice: [true, false]}}
dim: 32
stem: {type: patchify, params: {patch_size: 8}}
stages: [{depth: 1, block: {type: mhsa, params: {heads: 2}}}]
tokens: {cls_token: {from: cls}}
head: {type: linear, params: {pool: {from: cls, map: {true: cls, false: avg}}}}
"""
    space = spaces.load(write(tmp_path, text))
    pools = set()
    for seed in range(20):
        arch = space.sample(seed, constrained=False)
        assert (arch.head.params["pool"] == "cls") == arch.tokens.cls_token
        pools.add(arch.head.params["pool"])
    assert pools == {"cls", "avg"}


def test_img_size_is_readable_everywhere(tmp_path: Path) -> None:
    text = SMALL.replace("stem: {type: patchify, params: {patch_size: 4}}", "stem: {type: pvt, params: {patch_size: 4, grid: {from: img_size, divide: 4}}}")
    arch = spaces.load(write(tmp_path, text)).sample(1, constrained=False)
    assert arch.stem.params["grid"] == 16


# ---- extends ---------------------------------------------------------------------------------
def test_extends_merges_and_overrides(tmp_path: Path) -> None:
    write(tmp_path, SMALL, "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\nconstraints: {max_macs: 1G}\ntarget: {img_size: 32}\n", "child.yaml")
    space = spaces.load(child)
    assert space.name == "child"
    assert space.constraints.max_macs == 1e9 and space.constraints.max_params == 2e6  # merged key by key
    assert space.target.img_size == 32 and space.target.num_classes == 10
    assert "extends" not in space.source_text
    assert yaml.safe_load(space.source_text)["constraints"] == {"max_params": "2M", "max_macs": "1G"}


def test_extends_a_shipped_space_by_name(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, "extends: tiny_cpu\nname: tiny_small\nconstraints: {max_params: 300k}\n"))
    assert space.name == "tiny_small" and space.layout == "pyramid"
    assert space.constraints.max_params == 3e5


def test_errors_in_inherited_keys_name_the_parent_file(tmp_path: Path) -> None:
    write(tmp_path, SMALL.replace("type: convnext", "type: convnxt"), "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml")
    with pytest.raises(SpecError) as err:
        spaces.load(child)
    assert "base.yaml: stages.default.block.choice[2].type" in str(err.value)
    assert "did you mean 'convnext'" in str(err.value)
    # ...and errors in the child's own keys name the child.
    write(tmp_path, SMALL, "base.yaml")
    child.write_text("extends: base.yaml\nname: child\nstem: {type: patchfy}\n")
    with pytest.raises(SpecError, match=r"child\.yaml: stem\.type: unknown stem type 'patchfy'"):
        spaces.load(child)


# ---- identity --------------------------------------------------------------------------------
def test_hash_and_source_text_are_stable(tmp_path: Path) -> None:
    a = spaces.load(write(tmp_path, SMALL, "a.yaml"))
    b = spaces.load(write(tmp_path, "# a comment changes nothing\n" + SMALL, "b.yaml"))
    assert a.hash == b.hash and a.source_text == b.source_text
    assert spaces.load(a.file).hash == a.hash
    # The resolved text loads back to the same space (what a run manifest stores).
    again = spaces.load(write(tmp_path, a.source_text, "again.yaml"))
    assert again.hash == a.hash
    assert again.sample(4, constrained=False).hash == a.sample(4, constrained=False).hash


def test_with_constraints_and_target_make_new_spaces(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL))
    tighter = space.with_constraints(max_macs="20M")
    assert tighter.constraints.max_macs == 2e7 and tighter.constraints.max_params == 2e6
    assert tighter.hash != space.hash and "20000000" in tighter.source_text
    assert space.with_target(img_size=32).sample(0, constrained=False).img_size == 32
    with pytest.raises(SpecError, match="unknown constraint"):
        space.with_constraints(max_flops="1G")


def test_check_constraints_names_the_broken_bound(tmp_path: Path) -> None:
    space = spaces.load(write(tmp_path, SMALL))
    assert space.check_constraints(params=1e6, macs=1e8) is None
    assert "max_params" in space.check_constraints(params=3e6, macs=1e8)
    assert "max_macs" in space.check_constraints(params=1e6, macs=2e8)


# ---- shipped spaces, presets and files -------------------------------------------------------
def test_shipped_spaces_load_by_name() -> None:
    assert {"hybrid_vit", "isotropic_vit", "tiny_cpu"} <= set(spaces.names())
    hybrid = spaces.load("hybrid_vit")
    assert hybrid.layout == "pyramid" and len(hybrid.tree.stages) == 4
    assert hybrid.target.img_size == 224 and hybrid.target.num_classes == 1000
    assert hybrid.constraints.max_macs == 6e9
    assert spaces.load("isotropic_vit").layout == "isotropic"


def test_hybrid_vit_offers_every_pyramid_block_family() -> None:
    from archbench.registry import lookup, names

    pyramid_blocks = {n for n in names("block") if "pyramid" in lookup("block", n).layouts}
    offered = set(spaces.load("hybrid_vit").tree.stages[2].block.labels)
    assert offered == pyramid_blocks
    assert {"mhsa", "window", "focal", "regional", "refiner", "gnconv", "cmt", "fcvit", "convnext", "hire_mlp", "mixer", "resmlp"} <= offered
    stems = set(spaces.load("hybrid_vit").tree.stem.labels)
    assert {"patchify", "cmt", "overlap"} <= stems


def test_unknown_space_name_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'hybrid_vit'"):
        spaces.load("hybird_vit")


def test_a_zoo_preset_is_a_space_of_size_one() -> None:
    space = spaces.load("swin_t")
    assert space.size_log10 == 0.0
    assert space.sample(0) == zoo.get("swin_t")
    assert space.sample(7, constrained=False).hash == zoo.get("swin_t").hash
    assert space.contains("swin_t") and not space.contains("swin_s")


def test_an_architecture_file_is_a_space_of_size_one(tmp_path: Path) -> None:
    path = zoo.get("deit_s").save(tmp_path / "deit.yaml")
    space = spaces.load(path)
    assert space.size_log10 == 0.0 and space.layout == "isotropic"
    assert space.sample(3, constrained=False).hash == zoo.get("deit_s").hash
    # Its resolved text is a space file in its own right.
    again = spaces.load(write(tmp_path, space.source_text, "deit_space.yaml"))
    assert again.sample(0, constrained=False).hash == zoo.get("deit_s").hash


def test_the_complete_examples_in_the_docs_load(tmp_path: Path) -> None:
    text = (REPO / "docs" / "space-language.md").read_text()
    examples = [b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "layout:" in b and "stem:" in b]
    assert len(examples) >= 2
    for i, example in enumerate(examples):
        space = spaces.load(write(tmp_path, example, f"example{i}.yaml"))
        for seed in range(5):
            assert space.contains(space.sample(seed, constrained=False))
    first = spaces.load(tmp_path / "example0.yaml")
    assert first.name == "my_space"
    dims = [s.dim for s in first.sample(0, constrained=False).stages]
    assert dims[1:] == [2 * d for d in dims[:-1]]
