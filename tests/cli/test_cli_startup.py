"""Parsing and checking options must not import torch, timm or Ray (seconds and a gigabyte): a
mistyped flag is refused at once, and every new subcommand keeps it so (issue 12)."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from archbench.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # argparse: --help, a usage error
    code = stop.code
heavy = sorted(m for m in ("torch", "timm", "ray", "optuna", "fvcore") if m in sys.modules)
print(code, ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["search", "--trials", "0"],
        ["search", "--lr", "nan"],
        ["search", "--concurrency", "0"],
        ["fidelity", "--concurrency", "0"],
        ["profile", "deit_ti", "--threads", "0"],
        ["compare", "deit_s"],
        ["space", "show", "tiny_cpu", "--samples", "100000000"],
    ],
)
def test_an_option_error_imports_nothing_heavy(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    code, heavy = done.stdout.split()[-2:]
    assert heavy == "-", f"{argv}: imported {heavy}"
    assert code == ("0" if argv == ["--help"] else "2"), done.stdout + done.stderr
