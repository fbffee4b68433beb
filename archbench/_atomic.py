"""Files written whole or not at all: into a temporary file beside the target, then renamed over it.

A reader (a report, a resumed run, another Ray worker) never sees half a file, and a failure (a full
disk, an interrupt) leaves the earlier file as it was and no temporary file behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; the folder must exist.

    The file keeps the permissions of the one it replaces, else ``mode`` (default 0o644: run
    folders are for anyone who may read them; ``mkstemp`` alone would make it 0600).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> write_atomic(target, "kept")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('kept', ['notes.txt'])
    """
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            keep = os.stat(target).st_mode & 0o7777
        except OSError:
            keep = 0o644 if mode is None else mode
        os.fchmod(fd, keep)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
