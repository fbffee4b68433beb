"""Reading space files: safe YAML only, duplicate keys refused, `extends` resolved by deep merge.

Every error names the file and the key path; nothing in a space file is ever executed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archbench.registry import SpecError

MAX_BYTES = 1 << 20  # a search space is a page of YAML, not a data set
MAX_NODES = 100_000  # after aliases are expanded: refuses "billion laughs" files


class _SpaceLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``) and refuses duplicate keys."""


# Resolver for floats written without a dot (6e9, 1e-6); YAML 1.1 would read them as strings.
_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    __import__("re").compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _SpaceLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain name", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_SpaceLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


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


def parse_text(text: str, source: str) -> Any:
    """YAML text -> plain data, with one-line errors that name ``source`` and the line."""
    if "\x00" in text:
        raise SpecError(source, "not a text file (it contains NUL bytes)")
    if not text.strip():
        raise SpecError(source, "empty file: expected a search-space mapping")
    try:
        data = yaml.load(text, Loader=_SpaceLoader)  # noqa: S506 - _SpaceLoader is a SafeLoader
    except yaml.constructor.ConstructorError as err:
        raise SpecError(source, _constructor_message(err)) from None
    except RecursionError:
        raise SpecError(source, "malformed YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(source, f"malformed YAML{line}: {problem}") from None
    if data is None:
        raise SpecError(source, "empty file (only comments): expected a search-space mapping")
    if _count_nodes(data, MAX_NODES) > MAX_NODES:
        raise SpecError(source, f"more than {MAX_NODES} values once YAML aliases are expanded: not a search space")
    return data


def _count_nodes(data: Any, limit: int) -> int:
    # Iterative and stopping at the limit, so an alias bomb costs at most `limit` steps.
    count, stack = 0, [data]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _constructor_message(err: yaml.constructor.ConstructorError) -> str:
    mark = err.problem_mark
    line = f" at line {mark.line + 1}" if mark is not None else ""
    problem = err.problem or ""
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'")
        return f"YAML tag {tag}{line} is not allowed: space files are plain data (nothing is executed)"
    return f"malformed YAML{line}: {problem}"


def read_file(path: Path, display: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(display, "no such file") from None
    except OSError as err:
        raise SpecError(display, f"cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(display, f"file is {len(raw)} bytes; a space file must stay under {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(display, f"not a UTF-8 text file (byte {err.start} is {raw[err.start]:#04x}; binary?)") from None
    return parse_text(text, display)


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
        raise SpecError(display, f"expected a mapping of space keys at the top, got {_describe(data)}")
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
        raise SpecError(f"{display}: extends", f"expected the name or path of a space, got {_describe(parent_name)}")
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


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"
