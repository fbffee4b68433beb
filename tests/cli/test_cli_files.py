"""Architecture files through the real CLI: one loader with space files (floats such as 1e-6,
the same protections), and user errors as one line while library bugs keep their traceback."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archbench.cli import main
from archbench.errors import UserError

# A ConvNeXt-style pyramid; `layer_scale: 1e-6` is a string to YAML 1.1, a float to the shared loader.
SMALL_CONVNEXT = """\
name: tiny_convnext
layout: pyramid
input: {img_size: 32, num_classes: 10}
stem: {type: patchify, params: {patch_size: 4}}
stages:
  - {depth: 1, dim: 32, block: {type: convnext, params: {layer_scale: 1e-6}}}
head: {type: linear, params: {pool: avg}}
"""

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_float_written_1e_minus_6_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny_convnext.yaml"
    path.write_text(SMALL_CONVNEXT)
    code, out, err = run_cli(capsys, "profile", str(path), "--no-latency", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["name"] == "tiny_convnext" and data["img_size"] == 32 and data["params"] > 0 and data["macs"] > 0


def test_an_alias_bomb_architecture_file_exits_2_quickly_with_one_line(tmp_path: Path, repo: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)  # 10^9 strings once expanded
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(repo / "bench.py"), "profile", str(path), "--no-latency"], capture_output=True, text=True, timeout=120
    )
    assert time.perf_counter() - started < 60  # interpreter and torch start-up; the refusal itself is instant
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bomb.yaml" in lines[0] and "once YAML aliases are expanded" in lines[0], proc.stderr


def test_user_errors_are_one_line_and_library_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import archbench.measure

    def refuse(*args: object, **kwargs: object) -> None:
        raise UserError("--thing: not acceptable")

    monkeypatch.setattr(archbench.measure, "profile", refuse)
    code, out, err = run_cli(capsys, "profile", "deit_ti")
    assert code == 2 and out == "" and err == "archbench: error: --thing: not acceptable\n"

    def bug(*args: object, **kwargs: object) -> None:
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(archbench.measure, "profile", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        main(["profile", "deit_ti"])
