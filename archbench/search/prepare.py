"""Opening a search's run: options checked against the space, then the run folder created with its
search manifest, or reopened with the stored settings on --resume; the device and space it runs on.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.errors import UserError
from archbench.search.options import SearchOptions
from archbench.search.sampling import check_study
from archbench.store.run import Manifest, RunDirLock, RunFolder, check_unchanged

if TYPE_CHECKING:
    from archbench.space import Space

SEARCH = "search"  # this kind of run, in its manifest and its lock
# A resumed run keeps its own settings; only these may change on the command line.
CHANGEABLE_ON_RESUME = frozenset({"trials", "time_budget_min", "concurrency", "ray_address", "cpus_per_trial", "gpus_per_trial"})
_NOT_SETTINGS = frozenset({"resume", "run_dir"})  # how to find the run, not what it is


def default_run_dir(space_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(space_name).stem}-{stamp}"


def check_run_dir(options: SearchOptions, overrides: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Refuse a run folder that cannot take this run, before anything heavy is imported or written:
    a file, a folder that already holds a run (without --resume), no run to resume, or a resume
    that changes a setting the run keeps (``overrides``: the flat names given)."""
    if options.resume:
        _, manifest = RunFolder.reopen(options.run_dir, SEARCH, what="a search")
        _check_resumable(stored_options(manifest), options, overrides, Path(str(options.run_dir)))
    elif options.run_dir:
        RunFolder.check_new(options.run_dir)


def stored_options(manifest: Manifest) -> SearchOptions:
    """The options a run was started with (runs from before --train-images trained on the whole
    split: they resume as they ran)."""
    return SearchOptions.from_dict({"train_images": None, **manifest.options})


def _check_resumable(stored: SearchOptions, options: SearchOptions, overrides: set[str], run_dir: Path) -> None:
    fixed = overrides - CHANGEABLE_ON_RESUME - _NOT_SETTINGS
    check_unchanged(stored.to_dict(), options.to_dict(), fixed, run_dir=run_dir, changeable=CHANGEABLE_ON_RESUME)


def prepare_run(
    options: SearchOptions, command: list[str], overrides: set[str], lock: RunDirLock | None = None
) -> tuple[SearchOptions, Path, Manifest]:
    """Create (or, with --resume, reopen) the run folder; errors are ValueErrors naming the option.

    ``overrides`` are the flat names of the options given on the command line; ``lock`` (when
    given) is acquired on the folder before anything in it changes.
    """
    from archbench import space as spaces

    if options.resume:
        folder, manifest = RunFolder.reopen(options.run_dir, SEARCH, what="a search", lock=lock)
        stored = stored_options(manifest)
        _check_resumable(stored, options, overrides, folder.path)
        updates = {k: getattr(options, k) for k in overrides & CHANGEABLE_ON_RESUME}
        options = replace(stored, resume=True, run_dir=str(folder.path), **updates)
        # A damaged study or space is refused before the manifest records this resume.
        check_study(folder)
        space = run_space(options, manifest.space.get("hash"))
        manifest = replace(manifest, options=options.to_dict(), resumed=manifest.resumed + [" ".join(command)])
        folder.write_manifest(manifest, space_text=space.source_text)  # a deleted copy is written again
        return options, folder.path, manifest
    space = spaces.load(options.space)
    with_bounds(space, options).check_feasible()  # an impossible --max-macs fails before the folder exists
    folder = RunFolder.create(options.run_dir or default_run_dir(space.name))
    try:
        if lock is not None:
            lock.acquire(folder.path)
        options = replace(options, run_dir=str(folder.path))
        manifest = search_manifest(options, space, command)
        folder.write_manifest(manifest, space_text=space.source_text)
    except BaseException:
        folder.discard_unstarted()  # e.g. a full disk: the corrected command finds the folder free
        raise
    return options, folder.path, manifest


def search_manifest(options: SearchOptions, space: Space, command: list[str]) -> Manifest:
    """The manifest of a new search (kind ``search``) over ``space``."""
    from archbench.search.lease import ISOLATION_METHOD

    return new_manifest(
        SEARCH,
        options=options.to_dict(),
        space=space,
        source=options.space,
        command=command,
        objectives=[o.to_dict() for o in options.objectives],
        seed=options.train.seed,
        latency_isolation=ISOLATION_METHOD,
    )


def new_manifest(
    kind: str, *, options: dict[str, Any], space: Space, source: str, command: list[str], objectives: list[dict[str, str]], seed: int, latency_isolation: str
) -> Manifest:
    """The manifest of a new run of ``kind``: a fresh run id, the time, the command, the space, the
    versions and the hardware beside the settings the caller gives."""
    from archbench.measure.provenance import versions
    from archbench.store import SCHEMA_VERSION

    return Manifest(
        kind=kind,
        run_id=uuid.uuid4().hex[:12],
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(command),
        options=options,
        space=space_record(space, source),
        objectives=objectives,
        seed=seed,
        schema_version=SCHEMA_VERSION,
        versions=versions(),
        hardware=hardware(),
        latency_isolation=latency_isolation,
    )


def space_record(space: Space, source: str) -> dict[str, Any]:
    """The manifest's description of the space a run works on (its copy sits beside the manifest)."""
    from archbench.store.run import SPACE_COPY

    return {
        "name": space.name,
        "source": str(getattr(space, "file", source)),
        "hash": space.hash,
        "copy": SPACE_COPY,
        "constraints": space.constraints.to_dict(),
        "target": {"img_size": space.target.img_size, "num_classes": space.target.num_classes},
    }


def hardware() -> dict[str, Any]:
    """The machine a run's driver is on: CPU, CPU count, GPUs, host."""
    import torch

    from archbench.measure.provenance import cpu_name

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpus, "host": os.uname().nodename}


def load_space(options: SearchOptions) -> Space:
    """The space the run searches (:func:`run_space`), under the run's bounds."""
    return with_bounds(run_space(options), options)


def run_space(options: SearchOptions, recorded_hash: str | None = None) -> Space:
    """The space a run works on: the run folder's copy; without one (deleted), the space the run was
    started from (``options.space``) if it is still the same, its hash the manifest's ``recorded_hash``.

    Raises:
        UserError: the copy is missing and the space it copied cannot be loaded or has changed.
    """
    from archbench import space as spaces

    if not options.run_dir:
        return spaces.load(options.space)
    copy = RunFolder(options.run_dir).space_copy
    if copy.exists():
        return spaces.load(str(copy))
    try:
        space = spaces.load(options.space)
    except (UserError, OSError) as err:
        raise UserError(f"{copy}: missing, and the space it copied cannot be loaded ({err}): put the run's {copy.name} back to resume it") from None
    if recorded_hash and space.hash != recorded_hash:
        raise UserError(
            f"{copy}: missing, and the space it copied ({options.space}) has changed since the run started "
            f"(hash {space.hash}, the run's {recorded_hash}): put the run's {copy.name} back to resume it"
        )
    return space


def with_bounds(space: Space, options: SearchOptions) -> Space:
    """The space under --max-macs / --max-params where given (they override the space's own)."""
    bounds = {k: v for k, v in (("max_macs", options.max_macs), ("max_params", options.max_params)) if v is not None}
    return space.with_constraints(**bounds) if bounds else space


def resolve_device(options: SearchOptions) -> tuple[str, float]:
    """The device trials use (``auto`` decided on the driver) and the GPUs each trial asks Ray for.

    Raises:
        ValueError: ``--device cuda`` on a machine without CUDA (and no cluster to run on).
    """
    import torch

    device = options.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not options.ray_address else "cpu"
    if device.startswith("cuda") and not options.ray_address and not torch.cuda.is_available():
        raise UserError("--device cuda: this machine has no CUDA device")
    gpus = options.gpus_per_trial
    if device.startswith("cuda") and gpus == 0:
        gpus = 0.25  # four small proxies share a GPU; Ray schedules the fractions, it does not isolate memory
    return device, gpus
