"""Where per-layer costs are kept: a dict in memory in front of one SQLite file in the user's cache
folder (WAL mode: many Ray workers on one machine read and write it at once without locks held).

The file's name is a fingerprint of everything an entry depends on besides its key: archbench's
layer and counter source, and the torch, timm and fvcore versions. A file SQLite cannot read is
deleted and started again; an entry that does not parse or has the wrong shape is ignored and
measured again: nothing from disk is trusted without its check.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import Any

from archbench.cache import cache_dir

__all__ = ["LayerStore", "fingerprint"]

READS = "reads"  # the rows that list which context fields a layer's factory reads

# archbench's own files whose change can change a layer's cost (with their package's blocks).
_SOURCES = ("builder.py", "registry.py", "measure/macs.py", "measure/layer_cost.py", "measure/cost.py")


def fingerprint(version: int) -> str:
    """A digest of the versions and archbench sources that stored entries depend on."""
    import fvcore
    import timm
    import torch

    import archbench

    root = Path(archbench.__file__).parent
    digest = hashlib.sha256(f"{version}|{archbench.__version__}|{torch.__version__}|{timm.__version__}|"
                            f"{getattr(fvcore, '__version__', '?')}".encode())
    for path in sorted([*(root / s for s in _SOURCES), *(root / "blocks").glob("*.py")]):
        with contextlib.suppress(OSError):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:20]


def _valid(counter: str, value: Any) -> bool:
    if counter.startswith("latency"):
        return isinstance(value, dict) and all(isinstance(v, (int, float)) and v >= 0 for v in value.values()) and bool(value)
    if counter.startswith("calibration"):
        return isinstance(value, dict) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value.values())
    if counter == READS:
        return isinstance(value, list) and all(isinstance(r, list) and all(isinstance(f, str) for f in r) for r in value)
    if not isinstance(value, dict) or not all(isinstance(value.get(k), int) for k in ("params", "macs")):
        return False
    if value["params"] < 0 or value["macs"] < 0:
        return False
    if counter == "meta":
        return "out" in value and isinstance(value.get("stride"), int)
    return isinstance(value.get("uncounted_ops"), dict) and isinstance(value.get("ignored_ops"), dict)


class LayerStore:
    """Per-layer entries by (counter, key): memory first, then the SQLite file (if any)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.rebuilt = False  # the file was unreadable and has been started afresh
        if path is not None:
            self._open()

    @classmethod
    def open_default(cls, version: int) -> LayerStore:
        return cls(cache_dir("layer-cost") / f"layers-{fingerprint(version)}.sqlite")

    # ---- reading and writing ---------------------------------------------------------------------
    def get(self, counter: str, key: str) -> Any | None:
        found = self._memory.get((counter, key))
        if found is None and self._db is not None:
            found = self._read_one(counter, key)  # another process may have measured it since
            if found is not None:
                self._memory[(counter, key)] = found
        return found

    def put(self, counter: str, key: str, value: Any) -> None:
        self._memory[(counter, key)] = value
        self._write(counter, key, value)

    def reads(self, base_key: str) -> list[tuple[str, ...]]:
        """The context-field sets recorded for a layer (one per way its factory was seen to read)."""
        found = self.get(READS, base_key) or []
        return [tuple(r) for r in found]

    def add_reads(self, base_key: str, read: tuple[str, ...]) -> None:
        known = self.reads(base_key)
        if read not in known:
            self.put(READS, base_key, [list(r) for r in [*known, read]])

    def __len__(self) -> int:
        """Distinct layers known (by the fast counter's entries)."""
        return sum(1 for counter, _ in self._memory if counter == "meta")

    def clear_memory(self) -> None:
        self._memory.clear()

    # ---- the file --------------------------------------------------------------------------------
    def _open(self) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # no cache folder: memory only
        for attempt in range(2):
            try:
                self._db = self._connect()
                self._load_all()
                return
            except sqlite3.DatabaseError:
                self._close()
                if attempt == 0:
                    self._discard_file()
            except OSError:
                self._close()
                return

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last entries, never corrupt
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        db.execute("CREATE TABLE IF NOT EXISTS layers (counter TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
                   "PRIMARY KEY (counter, key)) WITHOUT ROWID")
        return db

    def _load_all(self) -> None:
        assert self._db is not None
        for counter, key, text in self._db.execute("SELECT counter, key, value FROM layers"):
            value = self._parse(counter, text)
            if value is not None:
                self._memory[(counter, key)] = value

    def _read_one(self, counter: str, key: str) -> Any | None:
        assert self._db is not None
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM layers WHERE counter = ? AND key = ?", (counter, key)).fetchone()
        except sqlite3.Error:
            return None
        return self._parse(counter, row[0]) if row else None

    @staticmethod
    def _parse(counter: str, text: str) -> Any | None:
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            return None
        return value if _valid(counter, value) else None

    def _write(self, counter: str, key: str, value: Any) -> None:
        if self._db is None:
            return
        try:
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO layers (counter, key, value) VALUES (?, ?, ?)",
                                 (counter, key, json.dumps(value, sort_keys=True)))
        except sqlite3.Error:
            pass  # best effort: a busy or read-only cache costs a measurement next time

    def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def _discard_file(self) -> None:
        assert self.path is not None
        self.rebuilt = True
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{self.path}{suffix}").unlink()
