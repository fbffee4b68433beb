"""Reading space files: `extends` resolved by deep merge, each key path remembering its file.

Parsing (safe YAML, the same protections as architecture files) is ``archbench._yaml``'s job.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench._validate import describe
from archbench._yaml import read_data
from archbench.registry import SpecError

SPACE_EXPECTED = "a search-space mapping"


@dataclass
class Document:
    """A space file after `extends` is resolved: the merged mapping and, per key path, its file."""

    data: dict[str, Any]
    file: str
    origins: dict[tuple[Any, ...], str] = field(default_factory=dict)
    chain: tuple[str, ...] = ()

    def file_of(self, keys: tuple[Any, ...]) -> str:
        """The file that wrote the longest prefix of ``keys`` (the child file wins over its parent)."""
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.origins:
                return self.origins[keys[:n]]
        return self.file


def read_file(path: Path, display: str) -> Any:
    """One space file as plain data, through the loader architecture files share."""
    return read_data(path, display, expected=SPACE_EXPECTED)


def load_document(path: Path, display: str, *, resolve_name: Any, _chain: tuple[tuple[str, str], ...] = ()) -> Document:
    """Read ``path`` and, recursively, the space it ``extends``; the child's keys override.

    ``resolve_name(name, relative_to, where)`` maps an ``extends`` value to (path, display name).
    """
    key = str(path.resolve()) if path.exists() else display
    if key in [k for k, _ in _chain]:
        names = [d for _, d in _chain] + [display]
        raise SpecError(f"{_chain[-1][1]}: extends", "circular extends: " + " -> ".join(names))
    data = read_file(path, display)
    if not isinstance(data, dict):
        raise SpecError(display, f"expected a mapping of space keys at the top, got {describe(data)}")
    for k in data:
        if not isinstance(k, str):
            raise SpecError(display, f"top-level key {k!r} is not a name")
    parent_name = data.get("extends")
    own = {k: v for k, v in data.items() if k != "extends"}
    if parent_name is None:
        doc = Document(data=own, file=display, chain=(display,))
        _mark(doc.origins, own, (), display)
        return doc
    if not isinstance(parent_name, str) or not parent_name:
        raise SpecError(f"{display}: extends", f"expected the name or path of a space, got {describe(parent_name)}")
    parent_path, parent_display = resolve_name(parent_name, path.parent, f"{display}: extends")
    parent = load_document(parent_path, parent_display, resolve_name=resolve_name, _chain=(*_chain, (key, display)))
    merged = merge(parent.data, own)
    origins = dict(parent.origins)
    _forget_replaced(origins, parent.data, own, ())
    _mark(origins, own, (), display)
    return Document(data=merged, file=display, origins=origins, chain=(*parent.chain, display))


def merge(base: Any, override: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else (lists, scalars, null) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _mark(origins: dict[tuple[Any, ...], str], data: Any, prefix: tuple[Any, ...], file: str) -> None:
    if prefix:
        origins[prefix] = file
    if isinstance(data, dict):
        for key, value in data.items():
            _mark(origins, value, (*prefix, key), file)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _mark(origins, value, (*prefix, i), file)


def _forget_replaced(origins: dict[tuple[Any, ...], str], base: Any, override: Any, prefix: tuple[Any, ...]) -> None:
    # Where the child replaces a subtree, the parent's record of its inner keys no longer holds.
    for key, value in override.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _forget_replaced(origins, base[key], value, path)
        else:
            for stale in [k for k in origins if len(k) > len(path) and k[: len(path)] == path]:
                del origins[stale]

