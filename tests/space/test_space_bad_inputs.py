"""The corpus of malformed space files (tests/fixtures/bad_spaces/): each gives exactly the message
listed in expected.yaml, names its file, and through the CLI exits 2 with one stderr line."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import archbench.space as spaces
from archbench.cli import main
from archbench.registry import SpecError

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad_spaces"
EXPECTED: dict[str, list[str]] = yaml.safe_load((BAD / "expected.yaml").read_text())


def test_the_corpus_is_complete() -> None:
    files = {p.name for p in BAD.iterdir() if p.name != "expected.yaml"}
    assert files == set(EXPECTED), "every bad file needs its expected message, and every message its file"
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_raises_one_clear_spec_error(name: str) -> None:
    with pytest.raises(SpecError) as err:
        spaces.load(BAD / name)
    message = str(err.value)
    assert name in message, "the message names the file"
    for part in EXPECTED[name]:
        assert part in message
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_exits_2_with_one_line_and_no_traceback(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["space", "show", str(BAD / name), "--samples", "0"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("archbench: error: ") and name in lines[0]
    assert EXPECTED[name][-1] in lines[0]
    assert "Traceback" not in captured.err


def test_yaml_tags_are_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # python_object_tag.yaml would write PWNED_MARKER into the working directory if it ran.
    monkeypatch.chdir(tmp_path)
    for name in ("python_object_tag.yaml", "python_name_tag.yaml"):
        with pytest.raises(SpecError, match="is not allowed"):
            spaces.load(BAD / name)
        assert main(["space", "show", str(BAD / name), "--samples", "0"]) == 2
    assert not (tmp_path / "PWNED_MARKER").exists()
    assert os.listdir(tmp_path) == []


def test_a_missing_file_and_an_unknown_name_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "show", "no/such/space.yaml"]) == 2
    assert "no/such/space.yaml: no such file" in capsys.readouterr().err
    assert main(["space", "show", "hybird_vit"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'hybrid_vit'" in err and len(err.strip().splitlines()) == 1
