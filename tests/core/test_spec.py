"""ArchSpec: round-trips, stable hashes, and validation errors that name the key path."""
from __future__ import annotations

import json

import pytest

import archbench
from archbench import zoo
from archbench.registry import SpecError
from archbench.spec import ArchSpec, load_file


def test_round_trip_dict_json_yaml_keeps_hash(tmp_path, repo):
    arch = load_file(repo / "examples" / "small_hybrid.yaml")
    again = ArchSpec.from_dict(arch.to_dict())
    assert again == arch and again.hash == arch.hash
    for suffix in (".json", ".yaml"):
        path = arch.save(tmp_path / f"a{suffix}")
        assert load_file(path) == arch


def test_hash_is_a_fixed_content_hash_independent_of_name_and_key_order():
    data = zoo.get("deit_s").to_dict()
    renamed = dict(reversed(list({**data, "name": "other"}.items())))
    assert ArchSpec.from_dict(renamed).hash == zoo.get("deit_s").hash
    # A literal: the same architecture hashes the same on every machine and in every release.
    assert zoo.get("deit_s").hash == "c29afd7128cf03b1"


def test_defaults_are_filled_so_equal_architectures_hash_equal():
    data = zoo.get("deit_s").to_dict()
    data["stages"][0]["block"]["params"] = {"heads": 6}  # omit every defaulted parameter
    assert ArchSpec.from_dict(data).hash == zoo.get("deit_s").hash


def test_any_change_changes_the_hash():
    data = zoo.get("deit_s").to_dict()
    data["stages"][0]["block"]["params"]["mlp_ratio"] = 3.0
    assert ArchSpec.from_dict(data).hash != zoo.get("deit_s").hash


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda d: d["stages"][0]["block"].update(type="attn"), "stages[0].block.type", "unknown block type 'attn'"),
        (lambda d: d["stem"].update(type="patchfy"), "stem.type", "did you mean 'patchify'"),
        (lambda d: d["stages"][0]["block"]["params"].update(heads=5), "stages[0].block.params", "not divisible by heads 5"),
        (lambda d: d["stages"][0].update(depth=0), "stages[0].depth", "expected an integer >= 1"),
        (lambda d: d["stages"][0]["block"]["params"].update(mlp_ratio="four"), "stages[0].block.params.mlp_ratio", "expected float"),
        (lambda d: d["stages"][0]["block"]["params"].update(hedas=6), "stages[0].block.params.hedas", "unknown parameter"),
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["input"].update(img_size=-3), "input.img_size", "expected an integer >= 1"),
        (lambda d: d.update(layout="ring"), "layout", "expected 'pyramid' or 'isotropic'"),
        (lambda d: d.update(stages=[]), "stages", "non-empty list"),
    ],
)
def test_validation_errors_name_the_key_path(mutate, path, message):
    data = zoo.get("deit_s").to_dict()
    mutate(data)
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(data)
    assert err.value.path == path
    assert message in str(err.value)


def test_width_change_without_downsample_is_rejected(repo):
    data = load_file(repo / "examples" / "small_hybrid.yaml").to_dict()
    data["stages"][1]["downsample"] = None
    with pytest.raises(SpecError, match=r"stages\[1\].dim: changes width 64->128"):
        ArchSpec.from_dict(data)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [\n")
    with pytest.raises(SpecError, match="bad.yaml: malformed YAML at line"):
        load_file(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="evil.yaml: malformed YAML"):
        load_file(evil)
    broken = tmp_path / "x.json"
    broken.write_text("{")
    with pytest.raises(SpecError, match="x.json: malformed JSON"):
        load_file(broken)


def test_load_arch_accepts_zoo_names_and_files(repo):
    assert archbench.load_arch("deit_s").name == "deit_s"
    assert archbench.load_arch(str(repo / "examples" / "small_hybrid.yaml")).name == "small_hybrid"
    with pytest.raises(SpecError, match="did you mean 'deit_s'"):
        archbench.load_arch("deit_x")


def test_summary_names_stem_and_blocks():
    assert zoo.get("deit_s").summary() == "patchify | mhsa×12"
    assert json.loads(zoo.get("deit_s").to_json())["layout"] == "isotropic"


# Space files whose fault lies in reading, not in the space language: architecture files share the loader.
LOADER_CASES = (
    "alias_bomb.yaml", "binary_garbage.yaml", "deep_nesting.yaml", "duplicate_key.yaml", "empty.yaml",
    "latin1_text.yaml", "malformed_yaml.yaml", "nul_bytes.yaml", "only_comments.yaml", "python_name_tag.yaml",
    "python_object_tag.yaml",
)


@pytest.mark.parametrize("name", LOADER_CASES)
def test_architecture_files_get_the_space_loaders_protections(name, repo):
    import yaml

    bad = repo / "tests" / "fixtures" / "bad_spaces"
    expected = yaml.safe_load((bad / "expected.yaml").read_text())[name]
    with pytest.raises(SpecError) as err:
        load_file(bad / name)
    message = str(err.value)
    assert name in message and "\n" not in message
    for part in expected:
        assert part in message


def test_floats_without_a_dot_read_as_numbers_in_architecture_files(tmp_path):
    data = zoo.get("convnext_t").to_dict()
    text = ArchSpec.from_dict(data).to_yaml().replace("layer_scale: 1.0e-06", "layer_scale: 1e-6")
    assert "layer_scale: 1e-6" in text
    path = tmp_path / "convnext.yaml"
    path.write_text(text)
    assert load_file(path) == zoo.get("convnext_t")


def test_a_space_target_is_an_architecture_input():
    import archbench.space
    from archbench.space import Target

    assert Target is archbench.InputSpec
    assert archbench.space.load("deit_ti").target == zoo.get("deit_ti").input
