"""The per-user cache folder (measurements worth keeping between commands) and its JSON files.

Every cache is best effort: a missing, corrupt or read-only cache only costs a measurement again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from archbench._atomic import write_atomic

__all__ = ["cache_dir", "read_json", "write_json"]


def cache_dir(*parts: str) -> Path:
    """``$ARCHBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/archbench``, else ``~/.cache/archbench``;
    ``parts`` name a sub-folder (``cache_dir("zoo")``). Nothing is created here."""
    root = os.environ.get("ARCHBENCH_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archbench"
    return base.joinpath(*parts)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable (a broken write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any, *, indent: int | None = None) -> None:
    """Write ``data`` atomically (temporary file, then rename), so a concurrent reader never sees
    half a file; an unwritable folder is ignored."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=indent, sort_keys=True))
    except OSError:
        pass  # a cache that cannot be written is recomputed next time
