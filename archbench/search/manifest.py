"""The run manifest: what was asked, on what, with what (command, options, space copy and hash,
seed, versions, hardware, latency isolation, schema version) — everything to read or resume a run.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.search.lease import ISOLATION_METHOD

if TYPE_CHECKING:
    from archbench.search.options import SearchOptions

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    run_id: str
    created_at: str
    command: str
    options: dict[str, Any]
    space: dict[str, Any]
    objectives: list[dict[str, str]]
    seed: int
    schema_version: int
    versions: dict[str, str]
    hardware: dict[str, Any]
    latency_isolation: str
    manifest_version: int = MANIFEST_VERSION
    resumed: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, options: SearchOptions, space: Any, command: list[str]) -> Manifest:
        from archbench.measure.provenance import cpu_name, versions
        from archbench.store import SCHEMA_VERSION

        return cls(
            run_id=uuid.uuid4().hex[:12],
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=" ".join(command),
            options=options.to_dict(),
            space={
                "name": space.name,
                "source": str(getattr(space, "file", options.space)),
                "hash": space.hash,
                "copy": "space.yaml",
                "constraints": space.constraints.to_dict(),
                "target": {"img_size": space.target.img_size, "num_classes": space.target.num_classes},
            },
            objectives=[{"name": o.name, "direction": o.direction, "metric": o.metric} for o in options.objectives],
            seed=options.seed,
            schema_version=SCHEMA_VERSION,
            versions=versions(),
            hardware=_hardware(),
            latency_isolation=ISOLATION_METHOD,
        )


def _hardware() -> dict[str, Any]:
    import torch

    from archbench.measure.provenance import cpu_name

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus, "host": os.uname().nodename}


def write_manifest(run_dir: Path, manifest: Manifest, space_text: str | None = None) -> Path:
    """Atomically (re)write ``manifest.json``; the space copy is written once, beside it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "manifest.json"
    tmp = run_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    if space_text is not None and not (run_dir / "space.yaml").exists():
        (run_dir / "space.yaml").write_text(space_text)
    return path


def read_manifest(run_dir: Path) -> Manifest:
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise ValueError(f"--run-dir: {run_dir} is not a run folder (no manifest.json)")
    try:
        data = json.loads(path.read_text())
        return Manifest(**data)
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: unreadable manifest ({err})") from None
