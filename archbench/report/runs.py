"""Finding and reading run folders for a report: every readable trial of every run as one table,
with one plain-language warning per folder or part that could not be used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from archbench.errors import UserError
from archbench.objectives import OBJECTIVES, Objective
from archbench.store.run import (
    DEFAULT_KIND,
    MANIFEST_FILE,
    TRIALS_DIR,
    RunFolder,
    manifest_objectives,
)

DEFAULT_ROOT = Path("runs")


@dataclass(frozen=True)
class RunInfo:
    """One run folder as the report sees it: where, under what label, and what its manifest says."""

    path: Path
    label: str
    objectives: tuple[Objective, ...] | None  # None: no readable manifest
    sampler: str | None
    space: str | None
    img_size: int | None
    trials: int
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class LoadedRuns:
    """The trials of all readable runs (``run`` column = the run's label) and what was skipped."""

    frame: pd.DataFrame
    runs: list[RunInfo]
    warnings: list[str]


def is_run(path: Path) -> bool:
    return RunFolder.is_run(path)


def discover(paths: Sequence[str | Path] | None, root: Path = DEFAULT_ROOT) -> tuple[list[Path], list[str]]:
    """The run folders to read and a warning for each path that is not one.

    No paths: every run folder under ``root``. A path that is not a run but holds runs (``runs/``)
    stands for those runs; ``RUN/trials`` stands for ``RUN``.

    Raises:
        ValueError: no paths and ``root`` does not exist.
    """
    warnings: list[str] = []
    if not paths:
        if not root.is_dir():
            raise UserError(f"no run folders given and {root}/ does not exist (pass RUN_DIR…)")
        paths = [root]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.name == TRIALS_DIR and is_run(path.parent):
            path = path.parent
        if not path.exists():
            warnings.append(f"{path}: no such folder (skipped)")
        elif not path.is_dir():
            warnings.append(f"{path}: not a folder (skipped)")
        elif is_run(path):
            found.append(path)
        else:
            # A folder of runs (runs/): each run in it; anything else in it is named and skipped.
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
            runs = [p for p in children if is_run(p)]
            skipped = [p for p in children if p not in runs] if runs else [path]
            warnings.extend(f"{p}: not a run folder (no {MANIFEST_FILE} or {TRIALS_DIR}/) (skipped)" for p in skipped)
            found.extend(runs)
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    return unique, warnings


def load_runs(paths: Sequence[str | Path] | None = None, *, root: Path = DEFAULT_ROOT) -> LoadedRuns:
    """Read the runs at ``paths`` (default: all under ``runs/``) into one table.

    A missing folder, a folder with no trials, an unreadable manifest, an objective this version
    does not know and each corrupted Parquet part give one warning line; the rest is read.

    Example:
        ``demo_runs`` (the doctests' conftest.py writes it) holds two runs of three trials each:

        >>> loaded = load_runs([demo_runs / "nsga2-seed0", demo_runs / "random-seed0"])
        >>> loaded.frame.groupby("run").size().to_dict()
        {'nsga2-seed0': 3, 'random-seed0': 3}
        >>> [(run.label, run.sampler, [o.name for o in run.objectives]) for run in loaded.runs]
        [('nsga2-seed0', 'nsga2', ['val_acc', 'macs']), ('random-seed0', 'random', ['val_acc', 'macs'])]
        >>> load_runs([demo_runs / "missing"]).warnings  # doctest: +ELLIPSIS
        ['.../missing: no such folder (skipped)']

    Raises:
        ValueError: no paths were given and ``root`` does not exist.
    """
    from archbench.store import BadPart, read_trials

    folders, warnings = discover(paths, root)
    labels = _labels(folders)
    frames: list[pd.DataFrame] = []
    runs: list[RunInfo] = []
    for folder, label in zip(folders, labels):
        manifest, manifest_warning = _manifest(folder)
        if manifest_warning:
            warnings.append(manifest_warning)
        if manifest.get("kind", DEFAULT_KIND) != DEFAULT_KIND:
            continue  # a fidelity study is no search: `archbench report` renders it on its own
        objectives, unknown = manifest_objectives(manifest)
        for name in unknown:
            warnings.append(f"{RunFolder(folder).manifest_path}: objective '{name}' is not one archbench reports (ignored; known: {', '.join(OBJECTIVES)})")
        problems: list[BadPart] = []
        frame = read_trials(folder, on_bad="skip", bad_parts=problems)
        warnings.extend(f"{p.path}: skipped ({p.reason})" for p in problems)
        if frame.empty:
            if not problems:
                warnings.append(f"{folder}: no trials yet (trials/ has no part files) (skipped)")
            else:
                warnings.append(f"{folder}: no readable trials (skipped)")
            continue
        options = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
        space = manifest.get("space") if isinstance(manifest.get("space"), dict) else {}
        sampler = options.get("sampler") or _mode(frame.get("sampler"))
        space_name = space.get("name") or _mode(frame.get("space"))
        target = space.get("target") if isinstance(space.get("target"), dict) else {}
        img_size = target.get("img_size") or _mode(frame.get("img_size"))
        frame = frame.assign(run=label)
        # Runs written before the manifest carried them still group by sampler and space.
        frame["sampler"] = frame["sampler"].fillna(sampler) if sampler else frame["sampler"]
        frame["space"] = frame["space"].fillna(space_name) if space_name else frame["space"]
        frames.append(frame)
        runs.append(
            RunInfo(
                path=folder,
                label=label,
                objectives=objectives,
                sampler=sampler,
                space=space_name,
                img_size=int(img_size) if img_size else None,
                trials=len(frame),
                manifest=manifest,
            )
        )
    if frames:
        combined = pd.concat(frames, ignore_index=True)
    else:
        from archbench.store import SCHEMA

        combined = SCHEMA.empty_table().to_pandas()
    return LoadedRuns(combined, runs, warnings)


def _labels(folders: Sequence[Path]) -> list[str]:
    """Folder names, widened to ``parent/name`` where two runs share a name."""
    names = [f.resolve().name for f in folders]
    labels = []
    for folder, name in zip(folders, names):
        if names.count(name) > 1:
            resolved = folder.resolve()
            name = f"{resolved.parent.name}/{resolved.name}"
        labels.append(name)
    return labels


def _manifest(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The manifest as far as it can be read, and the warning when it cannot be."""
    try:
        return RunFolder(folder).read_manifest_data() or {}, None
    except ValueError as err:
        return {}, f"{err}; using the trials alone"


def _mode(column: pd.Series | None) -> Any:
    if column is None:
        return None
    values = column.dropna()
    if values.empty:
        return None
    value = values.mode().iloc[0]
    return value.item() if hasattr(value, "item") else value
