"""Reading architecture and space files: one safe loader for YAML (and JSON) with the same
protections everywhere, and one-line errors that name the file and the line.

Protections: ``yaml.SafeLoader`` only (no Python tags, nothing executed), duplicate keys refused,
a size cap, NUL bytes and non-UTF-8 bytes refused, deep nesting and alias bombs stopped.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from archbench.registry import SpecError

__all__ = ["MAX_BYTES", "MAX_NESTING", "MAX_NODES", "DataLoader", "parse_text", "read_data"]

MAX_BYTES = 1 << 20  # an architecture or a search space is a page of YAML, not a data set
MAX_NODES = 100_000  # after aliases are expanded: refuses "billion laughs" files
# Real files nest a dozen levels; the readers after the parser recurse, so depth is capped here.
MAX_NESTING = 100


class DataLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``) and refuses duplicate keys."""


# YAML 1.1 resolves floats only with a dot (1.0e-6); people write 6e9 and 1e-6, as in YAML 1.2.
DataLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: DataLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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


DataLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_text(text: str, source: str, *, expected: str, json_text: bool = False) -> Any:
    """YAML (or, with ``json_text``, JSON) text -> plain data; errors name ``source`` and the line.

    Args:
        text: the file's text.
        source: the file as the user named it, for messages.
        expected: what the file should hold, for the empty-file message ("a search-space mapping").
        json_text: parse as JSON (``.json`` files) instead of YAML.

    Example:
        >>> parse_text("norm_eps: 1e-6\\nmax_macs: 6G", "x.yaml", expected="a mapping")
        {'norm_eps': 1e-06, 'max_macs': '6G'}
    """
    if "\x00" in text:
        raise SpecError(source, "not a text file (it contains NUL bytes)")
    if not text.strip():
        raise SpecError(source, f"empty file: expected {expected}")
    kind = "JSON" if json_text else "YAML"
    try:
        data = json.loads(text) if json_text else yaml.load(text, Loader=DataLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise SpecError(source, f"malformed {kind}: nested too deeply (more than {MAX_NESTING} levels)") from None
    except json.JSONDecodeError as err:
        raise SpecError(source, f"malformed JSON at line {err.lineno}: {err.msg}") from None
    except yaml.constructor.ConstructorError as err:
        raise SpecError(source, _constructor_message(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(source, f"malformed YAML{line}: {problem}") from None
    except ValueError as err:  # a value the parser could not convert: an integer of 5000 digits, a date 2024-13-01
        raise SpecError(source, f"malformed {kind}: {_value_problem(err)}") from None
    if data is None:
        raise SpecError(source, f"empty file (only comments): expected {expected}")
    nodes, depth = _count_nodes(data, MAX_NODES)
    if nodes > MAX_NODES:
        raise SpecError(source, f"more than {MAX_NODES} values once YAML aliases are expanded: not {expected}")
    if depth > MAX_NESTING:
        raise SpecError(source, f"malformed {kind}: nested too deeply (more than {MAX_NESTING} levels)")
    return data


def read_data(path: Path, display: str, *, expected: str) -> Any:
    """Read and parse the file at ``path`` (JSON when it ends in ``.json``, YAML otherwise).

    ``display`` is the name messages use; ``expected`` says what the file should hold.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SpecError(display, f"cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(display, f"file is {len(raw)} bytes; it must stay under {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(display, f"not a UTF-8 text file (byte {err.start} is {raw[err.start]:#04x}; binary?)") from None
    return parse_text(text, display, expected=expected, json_text=str(path).endswith(".json"))


def _count_nodes(data: Any, limit: int) -> tuple[int, int]:
    """The values in ``data`` and its deepest nesting, counted without recursion and stopping at
    ``limit`` values, so an alias bomb costs at most ``limit`` steps."""
    count, deepest, stack = 0, 0, [(data, 1)]
    while stack and count <= limit:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in (*node.keys(), *node.values()))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return count, deepest


def _value_problem(err: ValueError) -> str:
    text = " ".join(str(err).split())
    if "integer string conversion" in text:  # Python's guard: its advice (sys.set_int_max_str_digits) is not the user's fix
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return text


def _constructor_message(err: yaml.constructor.ConstructorError) -> str:
    mark = err.problem_mark
    line = f" at line {mark.line + 1}" if mark is not None else ""
    problem = err.problem or ""
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'")
        return f"malformed YAML{line}: tag {tag} is not allowed (plain data only: nothing in the file is executed)"
    return f"malformed YAML{line}: {problem}"
