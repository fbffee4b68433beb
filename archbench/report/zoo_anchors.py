"""Zoo anchors for a report: well-known published models measured on this machine at the run's
resolution (params, MACs, latency when it is an objective), cached per machine and version.

They have no proxy-task accuracy, so they stand beside searched models on efficiency axes only.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from archbench.cache import cache_dir, read_json, write_json
from archbench.errors import UserError

# Well-known presets a searched model is usually compared with, by layout of the space searched.
# Pyramid: the tiny (~4 GMACs) models of the seed papers plus two light ones for the low end.
DEFAULT_ANCHORS: dict[str, tuple[str, ...]] = {
    "pyramid": ("swin_t", "hornet_t_7x7", "cmt_s", "convnext_t", "regionvit_ti", "pvt_ti"),
    "isotropic": ("deit_ti", "deit_s", "convit_ti", "cait_xxs24", "resmlp_s12"),
}


@dataclass(frozen=True)
class LatencySetting:
    """The conditions a run timed its trials under; anchors are timed under the same ones."""

    batch_size: int = 1
    device: str = "cpu"
    threads: int | None = None
    dtype: str = "float32"

    def key(self) -> str:
        return f"b{self.batch_size}-{self.device}-t{self.threads or 'default'}-{self.dtype}"


@dataclass(frozen=True)
class ZooAnchor:
    """One preset as measured here: per-image MACs at ``img_size``, unique params, latency or None."""

    name: str
    img_size: int
    params: int
    macs: int
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    latency_batch_size: int | None = None
    latency_device: str | None = None
    published_top1: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_anchors(layouts: Sequence[str]) -> list[str]:
    """The default presets for runs of these layouts ("pyramid", "isotropic"), without repeats."""
    names: list[str] = []
    for layout in layouts:
        names.extend(n for n in DEFAULT_ANCHORS.get(layout, ()) if n not in names)
    return names or list(DEFAULT_ANCHORS["pyramid"])


def check_names(names: Sequence[str]) -> None:
    """Raises UserError naming the first unknown preset (with the closest known name)."""
    from archbench import zoo

    known = set(zoo.names())
    for name in names:
        if name not in known:
            raise UserError(f"--with-zoo: unknown zoo preset '{name}' ({zoo.suggest(name)})")


def machine_key(device: str = "cpu") -> tuple[str, dict[str, str]]:
    """A short key for this machine and software: a measurement is reused only under the same one."""
    from archbench.measure.provenance import device_name, versions

    v = versions()
    machine = {
        "host": platform.node(),
        "device_name": device_name(device),
        "archbench": v.get("archbench", "?"),
        "torch": v.get("torch", "?"),
        "timm": v.get("timm", "?"),
        "fvcore": v.get("fvcore", "?"),
    }
    digest = hashlib.sha1(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]
    return digest, machine


def measure_anchors(
    names: Sequence[str],
    *,
    img_size: int,
    latency: LatencySetting | None = None,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ZooAnchor]:
    """Params and MACs (and latency under ``latency`` if given) of each preset at ``img_size``.

    Measurements are cached in ``cache`` (default :func:`cache_dir`) under a key of this machine,
    the library versions, the preset's architecture hash, the resolution and the latency setting,
    so a second report is instant and a changed preset or library is measured again.

    Example:
        >>> [a.macs for a in measure_anchors(["deit_ti"], img_size=224)]
        [1258411200]
    """
    from archbench import zoo
    from archbench.measure import arch_cost, profile

    check_names(names)
    device = latency.device if latency else "cpu"
    key, machine = machine_key(device)
    path = (cache or cache_dir()) / "zoo" / f"{key}.json"
    entries = _read_cache(path)
    anchors, changed = [], False
    for name in names:
        arch = zoo.get(name)
        entry_key = f"{name}@{img_size}#{arch.hash}"
        entry = entries.get(entry_key, {})
        need_latency = latency is not None and latency.key() not in entry.get("latency", {})
        cached = bool(entry) and not need_latency
        if not entry or need_latency:
            if progress:
                progress(f"measuring zoo preset {name} at {img_size} px{' with latency' if latency else ''} (cached afterwards)")
            cost = arch_cost(arch, img_size=img_size, audited=True)
            entry = {"params": cost.params, "macs": cost.macs, "latency": dict(entry.get("latency", {}))}
            if latency is not None:
                measured = profile(
                    arch,
                    img_size=img_size,
                    memory=False,
                    batch_size=latency.batch_size,
                    device=device,
                    threads=latency.threads,
                    dtype=latency.dtype,
                )
                assert measured.latency is not None  # profile times by default
                entry["latency"][latency.key()] = {
                    "median": measured.latency.median,
                    "p90": measured.latency.p90,
                    "batch_size": measured.latency.batch_size,
                    "device": measured.latency.device,
                    "threads": measured.latency.threads,
                }
            entries[entry_key] = entry
            changed = True
        timed = entry.get("latency", {}).get(latency.key()) if latency else None
        anchors.append(
            ZooAnchor(
                name=name,
                img_size=img_size,
                params=int(entry["params"]),
                macs=int(entry["macs"]),
                latency_ms_median=timed["median"] if timed else None,
                latency_ms_p90=timed["p90"] if timed else None,
                latency_batch_size=timed["batch_size"] if timed else None,
                latency_device=timed["device"] if timed else None,
                published_top1=zoo.published(name).top1,
                cached=cached,
            )
        )
    if changed:
        _write_cache(path, machine, entries)
    return anchors


def _read_cache(path: Path) -> dict[str, Any]:
    data = read_json(path)
    try:
        return dict(data["entries"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return {}  # no cache yet, or one from a broken write: measure again


def _write_cache(path: Path, machine: dict[str, str], entries: dict[str, Any]) -> None:
    # A read-only cache only costs the next report the measurement.
    write_json(path, {"machine": machine, "entries": entries}, indent=1)
