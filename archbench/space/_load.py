"""Loading spaces: a shipped name, a space file (with ``extends``), a zoo preset or an
architecture file (the last two as spaces of size one); errors name the file that wrote the key.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.registry import SpecError
from archbench.space._read import Document, load_document, read_file
from archbench.space._space import Space, _stem_name

if TYPE_CHECKING:
    from archbench.spec import ArchSpec

def shipped_dir() -> Path:
    """The folder of shipped spaces: ``$ARCHBENCH_SPACES_DIR``, else the package's ``search_spaces``
    (package data in an installed wheel; in a checkout a link to the repository's ``search_spaces/``)."""
    override = os.environ.get("ARCHBENCH_SPACES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "search_spaces"


def names() -> list[str]:
    """The shipped spaces, by name (``search_spaces/*.yaml``)."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load(name_or_path: str | os.PathLike[str]) -> Space:
    """A Space from a shipped name (``hybrid_vit``), a space file, a zoo preset or an architecture
    file (the last two are spaces of size one).

    Example:
        >>> load("hybrid_vit").contains("swin_t")
        True
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    looks_like_file = text.endswith((".yaml", ".yml", ".json")) or os.sep in text or "/" in text
    if looks_like_file or (path.exists() and path.is_file()):
        return _load_file(path, text)
    if text in names():
        return _load_file(shipped_dir() / f"{text}.yaml", _display(shipped_dir() / f"{text}.yaml"))
    from archbench import zoo

    if text in zoo.names():
        arch = zoo.get(text)
        return _fixed_space(arch, f"zoo:{text}")
    options = names() + zoo.names()
    match = difflib.get_close_matches(text, options, n=1)
    hint = f"did you mean '{match[0]}'? " if match else ""
    if not shipped_dir().is_dir():
        hint += f"(the shipped spaces were not found in {shipped_dir()}; pass a file path) "
    raise SpecError(text, f"unknown space: not a shipped space ({', '.join(names()) or 'none found'}), zoo preset or file; {hint}".rstrip("; ").rstrip())


def _display(path: Path) -> str:
    """A short name for messages: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _resolve_extends(name: str, relative_to: Path, where: str) -> tuple[Path, str]:
    candidate = (relative_to / name) if not os.path.isabs(name) else Path(name)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        if not candidate.exists():
            raise SpecError(where, f"extends '{name}': no such file (looked at {_display(candidate)})")
        return candidate, _display(candidate)
    for option in (relative_to / f"{name}.yaml", shipped_dir() / f"{name}.yaml"):
        if option.exists():
            return option, _display(option)
    match = difflib.get_close_matches(name, names(), n=1)
    hint = f" (did you mean '{match[0]}'?)" if match else f" (shipped: {', '.join(names())})"
    raise SpecError(where, f"extends '{name}': no such space{hint}")


def _load_file(path: Path, display: str) -> Space:
    if not path.exists():
        raise SpecError(display, "no such file")
    data = read_file(path, display)
    if isinstance(data, dict) and ("input" in data or "spec_version" in data) and "extends" not in data:
        return _fixed_space(_arch_from(data, display), display)
    doc: Document = load_document(path, display, resolve_name=_resolve_extends)
    try:
        return Space(doc.data, file=doc.file)
    except SpecError as err:
        # Name the file that wrote the offending key (a parent's, when the key was inherited).
        where, _, key = err.path.partition(": ")
        owner = doc.file_of(_keys(key)) if key else doc.file
        raise SpecError(f"{owner}: {key}" if key else owner, err.message) from None


def _arch_from(data: dict[str, Any], display: str) -> ArchSpec:
    from archbench.spec import ArchSpec

    return ArchSpec.from_dict(data, source=display)


def _fixed_space(arch: ArchSpec, file: str) -> Space:
    """An architecture as a space of size one: every value fixed, so it samples to itself."""
    spec = arch.to_dict()
    data: dict[str, Any] = {
        "name": _stem_name(arch.name).replace(".", "_"),
        "description": f"the architecture {arch.name} ({file}) as a space of size one",
        "layout": spec["layout"],
        "target": spec["input"],
        "stem": spec["stem"],
        "stages": [
            {
                "depth": s["depth"],
                **({"dim": s["dim"]} if spec["layout"] == "pyramid" else {}),
                "block": s["block"],
                "downsample": s["downsample"],
            }
            for s in spec["stages"]
        ],
        "head": spec["head"],
        "drop_path_rate": spec["drop_path_rate"],
    }
    if spec["layout"] == "isotropic":
        data["dim"] = spec["stages"][0]["dim"]
        data["tokens"] = spec["tokens"]
    try:
        return Space(data, file=file, fixed=arch)
    except SpecError as err:  # a space's `target` is the architecture's `input`: name the key the file has
        raise SpecError(err.path.replace(f"{file}: target", f"{file}: input", 1), err.message) from None


def _keys(path: str) -> tuple[Any, ...]:
    """'stages.list[2].block.type' -> ('stages', 'list', 2, 'block', 'type')."""
    keys: list[Any] = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if name:
            keys.append(name)
        for index in indices:
            try:
                keys.append(int(index.rstrip("]")))
            except ValueError:
                break
    return tuple(keys)
