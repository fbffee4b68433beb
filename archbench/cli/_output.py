"""Shared output helpers for the CLI: JSON on stdout only, rich tables otherwise, quiet libraries.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any

from rich.console import Console


def quiet_libraries() -> None:
    """Keep tracer and deprecation chatter of torch/fvcore/timm off the user's terminal."""
    warnings.filterwarnings("ignore")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def console() -> Console:
    """rich output; piped or redirected output is not wrapped at rich's 80-column default, so
    tables stay one row a line in logs and files."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 200)


def fmt_millions(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e6:.2f}M"


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"
