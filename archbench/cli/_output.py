"""Shared output helpers for the CLI: JSON on stdout only, rich tables otherwise, quiet libraries,
and output files checked before the work and written whole or not at all.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console

from archbench._atomic import write_atomic
from archbench.errors import UserError


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


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work is done, an output file that cannot be written: a folder, a read-only
    file, or a place whose nearest existing folder is a file or not writable. Missing folders are
    fine: :func:`write_file` creates them.

    Raises:
        UserError: ``OPTION: PATH: cannot write (why)``.
    """
    def refuse(why: str) -> None:
        raise UserError(f"{option}: {path}: cannot write ({why})")

    if path.is_dir():
        refuse("it is a folder; give a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            refuse("the file is read-only")
        if not path.is_file():
            return  # a device or a pipe (/dev/stdout) is written in place
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        refuse(f"{folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        refuse(f"the folder {folder} is not writable")


def write_file(path: Path, data: bytes, option: str) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a temporary file beside it, then renamed
    over it, so a failure leaves no half-written file and an existing one as it was. Missing
    folders are created; a device or pipe (``/dev/stdout``) is written in place.

    Raises:
        UserError: ``OPTION: PATH: cannot write (why)``.
    """
    target = Path(os.path.realpath(path))  # through a symlink to its file, not over the link
    try:
        if target.exists() and not target.is_file():
            with open(target, "wb") as fh:
                fh.write(data)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as err:
        raise UserError(f"{option}: {path}: cannot write ({err.strerror or err})") from None
