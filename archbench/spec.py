"""ArchSpec: an architecture as plain, frozen data, the currency between every archbench module.

Specs round-trip through dicts, YAML and JSON, validate against the layer registry (defaults are
filled in, so equal architectures have equal canonical forms) and carry a stable content hash.
"""
from __future__ import annotations

import hashlib
import json
import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from archbench._validate import (
    MAX_DEPTH,
    MAX_DIM,
    MAX_IMG_SIZE,
    boolean,
    integer,
    mapping,
    no_unknown,
)
from archbench._yaml import read_data
from archbench.registry import SpecError, lookup

SPEC_VERSION = 1
ARCH_EXPECTED = "a mapping describing one architecture"
Layout = Literal["pyramid", "isotropic"]


@dataclass(frozen=True)
class InputSpec:
    """What the network eats and predicts: an ArchSpec's ``input`` and a space's ``target``."""

    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000

    @classmethod
    def from_dict(cls, raw: Any, path: str, *, min_classes: int = 0) -> InputSpec:
        """Validate a mapping of ``img_size``/``in_chans``/``num_classes`` written at ``path``
        (defaults fill the rest); ``num_classes`` 0 means no classifier (features only).

        Example:
            >>> InputSpec.from_dict({"img_size": 32, "num_classes": 10}, "input")
            InputSpec(img_size=32, in_chans=3, num_classes=10)
        """
        raw = mapping(raw, path)
        no_unknown(raw, ("img_size", "in_chans", "num_classes"), path)
        return cls(
            img_size=integer(raw.get("img_size", 224), f"{path}.img_size", minimum=1, maximum=MAX_IMG_SIZE),
            in_chans=integer(raw.get("in_chans", 3), f"{path}.in_chans", minimum=1),
            num_classes=integer(raw.get("num_classes", 1000), f"{path}.num_classes", minimum=min_classes),
        )


@dataclass(frozen=True)
class LayerSpec:
    """A registered layer (stem, block, downsampling or head): its type name and its parameters."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": _plain(self.params)}


@dataclass(frozen=True)
class StageSpec:
    """``depth`` blocks of one type at width ``dim``; ``downsample`` runs first (None: same resolution)."""

    depth: int
    dim: int
    block: LayerSpec
    downsample: LayerSpec | None = None


@dataclass(frozen=True)
class TokenSpec:
    """Isotropic trunks only: the class token and the learned absolute position embedding.

    ``cls_token_stage`` is the index of the stage before which the class token joins the patch
    tokens (ConViT adds it after its GPSA blocks; DeiT at 0). ``cls_token`` False means pooling.
    """

    cls_token: bool = True
    pos_embed: bool = True
    cls_token_stage: int = 0


@dataclass(frozen=True)
class ArchSpec:
    """One architecture. ``layout`` is "pyramid" (stages at falling resolution) or "isotropic"."""

    name: str
    layout: Layout
    input: InputSpec
    stem: LayerSpec
    stages: tuple[StageSpec, ...]
    head: LayerSpec
    tokens: TokenSpec | None = None
    drop_path_rate: float = 0.0

    # ---- derived facts -------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return sum(stage.depth for stage in self.stages)

    @property
    def img_size(self) -> int:
        return self.input.img_size

    def summary(self) -> str:
        """Short human form, e.g. ``conv | gnconv×2 · gnconv×3 · focal×9 · refiner×2``."""
        stages = " · ".join(f"{s.block.type}×{s.depth}" for s in self.stages)
        return f"{self.stem.type} | {stages}"

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec_version": SPEC_VERSION,
            "name": self.name,
            "layout": self.layout,
            "input": {
                "img_size": self.input.img_size,
                "in_chans": self.input.in_chans,
                "num_classes": self.input.num_classes,
            },
            "stem": self.stem.to_dict(),
            "stages": [
                {
                    "depth": s.depth,
                    "dim": s.dim,
                    "block": s.block.to_dict(),
                    "downsample": s.downsample.to_dict() if s.downsample else None,
                }
                for s in self.stages
            ],
            "head": self.head.to_dict(),
            "drop_path_rate": self.drop_path_rate,
        }
        if self.tokens is not None:
            out["tokens"] = {
                "cls_token": self.tokens.cls_token,
                "pos_embed": self.tokens.pos_embed,
                "cls_token_stage": self.tokens.cls_token_stage,
            }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "") -> ArchSpec:
        """Parse and validate; errors name ``source`` and the key path (``stages[2].block.heads``)."""
        try:
            return _parse(data)
        except SpecError as err:
            if source:
                raise SpecError(f"{source}: {err.path}" if err.path else source, err.message) from None
            raise

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        path.write_text(text)
        return path

    @property
    def hash(self) -> str:
        """Content hash of the canonical form: independent of ``name``, key order and machine."""
        body = self.to_dict()
        body.pop("name")
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_input(self, *, img_size: int | None = None, num_classes: int | None = None) -> ArchSpec:
        return replace(
            self,
            input=replace(
                self.input,
                img_size=img_size or self.input.img_size,
                num_classes=self.input.num_classes if num_classes is None else num_classes,
            ),
        )


def load_file(path: str | Path) -> ArchSpec:
    """An ArchSpec from a YAML or JSON file, read by the loader space files share (safe YAML,
    ``1e-6`` read as a float, alias bombs and binary files refused); errors name the file."""
    path = Path(path)
    data = read_data(path, str(path), expected=ARCH_EXPECTED)
    if not isinstance(data, dict):
        raise SpecError(str(path), f"expected {ARCH_EXPECTED}")
    return ArchSpec.from_dict(data, source=str(path))


# ---- parsing ---------------------------------------------------------------------------------
_TOP_KEYS = ("spec_version", "name", "layout", "input", "stem", "stages", "head", "tokens", "drop_path_rate")


def _parse(data: Mapping[str, Any]) -> ArchSpec:
    if not isinstance(data, Mapping):
        raise SpecError("", "expected a mapping describing one architecture")
    no_unknown(data, _TOP_KEYS, "")
    version = data.get("spec_version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError("spec_version", f"this archbench reads version {SPEC_VERSION}, got {reprlib.repr(version)}")
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise SpecError("name", "expected a non-empty string")
    layout = data.get("layout", "pyramid")
    if layout not in ("pyramid", "isotropic"):
        raise SpecError("layout", f"expected 'pyramid' or 'isotropic', got {reprlib.repr(layout)}")

    inp = InputSpec.from_dict(data.get("input", {}), "input")

    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpecError("stages", "expected a non-empty list of stages")
    first_dim = integer(mapping(raw_stages[0], "stages[0]").get("dim"), "stages[0].dim", minimum=1, maximum=MAX_DIM)
    stem = _layer(data.get("stem"), "stem", "stem", layout, dim=first_dim)

    stages: list[StageSpec] = []
    prev_dim = first_dim
    for i, raw in enumerate(raw_stages):
        path = f"stages[{i}]"
        raw = mapping(raw, path)
        no_unknown(raw, ("depth", "dim", "block", "downsample"), path)
        depth = integer(raw.get("depth"), f"{path}.depth", minimum=1, maximum=MAX_DEPTH)
        dim = integer(raw.get("dim"), f"{path}.dim", minimum=1, maximum=MAX_DIM)
        block = _layer(raw.get("block"), "block", f"{path}.block", layout, dim=dim)
        raw_down = raw.get("downsample")
        downsample = None
        if raw_down is not None:
            if layout == "isotropic":
                raise SpecError(f"{path}.downsample", "isotropic trunks keep one resolution")
            downsample = _layer(raw_down, "downsample", f"{path}.downsample", layout, dim=dim)
        elif dim != prev_dim:
            raise SpecError(f"{path}.dim", f"changes width {prev_dim}->{dim} without a downsample layer")
        stages.append(StageSpec(depth=depth, dim=dim, block=block, downsample=downsample))
        prev_dim = dim

    head = _layer(data.get("head", {"type": "linear"}), "head", "head", layout, dim=prev_dim)

    tokens = None
    if layout == "isotropic":
        raw_tokens = mapping(data.get("tokens", {}), "tokens")
        no_unknown(raw_tokens, ("cls_token", "pos_embed", "cls_token_stage"), "tokens")
        tokens = TokenSpec(
            cls_token=boolean(raw_tokens.get("cls_token", True), "tokens.cls_token"),
            pos_embed=boolean(raw_tokens.get("pos_embed", True), "tokens.pos_embed"),
            cls_token_stage=integer(raw_tokens.get("cls_token_stage", 0), "tokens.cls_token_stage", minimum=0),
        )
        if tokens.cls_token_stage > len(stages):
            raise SpecError("tokens.cls_token_stage", f"there are only {len(stages)} stages")
    elif "tokens" in data:
        raise SpecError("tokens", "only isotropic trunks have class tokens / position embeddings")

    rate = data.get("drop_path_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise SpecError("drop_path_rate", f"expected a number in [0, 1), got {reprlib.repr(rate)}")

    return ArchSpec(
        name=name,
        layout=layout,
        input=inp,
        stem=stem,
        stages=tuple(stages),
        head=head,
        tokens=tokens,
        drop_path_rate=float(rate),
    )


def _layer(raw: Any, kind: str, path: str, layout: str, *, dim: int) -> LayerSpec:
    if raw is None:
        raise SpecError(path, f"missing: a {kind} is required ({{type: NAME, params: {{...}}}})")
    if isinstance(raw, str):
        raw = {"type": raw}
    raw = mapping(raw, path)
    no_unknown(raw, ("type", "params"), path)
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        raise SpecError(f"{path}.type", f"expected the name of a registered {kind}")
    info = lookup(kind, type_name, f"{path}.type")  # type: ignore[arg-type]
    if layout not in info.layouts:
        raise SpecError(f"{path}.type", f"{kind} '{type_name}' does not fit a {layout} layout")
    params = info.resolve(mapping(raw.get("params", {}) or {}, f"{path}.params"), f"{path}.params", dim=dim)
    return LayerSpec(type=type_name, params=params)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(params.items())}
