"""Architecture files with values no layer can take (NaN, infinity, 10**40, a 5000-digit integer,
nesting 100000 deep): one line naming the file and the key path, exit 2, before anything is built.
The files and their messages are in tests/fixtures/bad_inputs/architectures/expected.yaml."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml

from archbench.cli import main
from archbench.registry import SpecError
from archbench.spec import ArchSpec, load_file

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad_inputs" / "architectures"
EXPECTED: dict[str, list[str]] = yaml.safe_load((BAD / "expected.yaml").read_text())


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("archbench: error: "), err
    return lines[0]


def test_the_corpus_is_complete() -> None:
    assert {p.name for p in BAD.iterdir() if p.name != "expected.yaml"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_bad_value_is_one_line_naming_the_file_and_key(name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A model too large to build is judged against the machine's memory: a fixed 16 GiB makes its message the same everywhere.
    monkeypatch.setattr(importlib.import_module("archbench.measure.profile"), "physical_memory", lambda: 16 * 2**30)
    command, message = EXPECTED[name]
    line = one_line_error(capsys, *command.split(), str(BAD / name), *(["--no-latency"] if command == "profile" else ["--samples", "0"]))
    assert line == f"archbench: error: {BAD / name}: {message}"


def test_the_checks_hold_for_specs_given_as_data() -> None:
    """The same validation, not the file reader, refuses them: a spec built in Python too."""
    data = yaml.safe_load((BAD / "mlp_ratio_huge.yaml").read_text())
    for value, found in ((float("nan"), "expected a finite number, got nan"), (10**40, "must be <= 2147483647, got an integer of 41 digits")):
        data["stages"][1]["block"]["params"]["mlp_ratio"] = value
        with pytest.raises(SpecError, match=f"^stages\\[1\\].block.params.mlp_ratio: {found}$"):
            ArchSpec.from_dict(data)
    data["stages"][1]["block"]["params"] = {"kernel": [[[[[[[[[[[[7]]]]]]]]]]]]}  # a short message, whatever the depth
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(data)
    assert str(err.value) == "stages[1].block.params.kernel: expected an integer, got [[[[[[[...]]]]]]]"


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_nesting_100000_deep_is_one_line(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text('{"layout": ' + "[" * 100_000 + "]" * 100_000 + "}")
    kind = "JSON" if suffix == ".json" else "YAML"
    assert one_line_error(capsys, "profile", str(path)) == f"archbench: error: {path}: malformed {kind}: nested too deeply (more than 100 levels)"
    # Shallow enough for the parser, too deep for anything after it: refused by the reader all the same.
    path.write_text(json.dumps({"layout": "pyramid", "stages": [{"dim": json.loads("[" * 500 + "]" * 500)}]}))
    with pytest.raises(SpecError, match="nested too deeply"):
        load_file(path)


def test_zero_classes_is_a_features_only_backbone_to_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(BAD / "zero_classes.yaml"), "--no-latency", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["params"] == 11680  # no classifier: stem, one ConvNeXt block and the head's norm
