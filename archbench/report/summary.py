"""One report over one or more runs: the ranked table, a summary per run (or sampler, or space)
with its front and hypervolume in a shared box, zoo anchors, and every warning met on the way.

The renderers (``export.py``, ``plot.py``) and the CLI only read a Report; nothing here prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from archbench.errors import UserError
from archbench.objectives import Objective, parse_objectives
from archbench.pareto import pareto_ranks
from archbench.report.hypervolume import Box, box_from_data, hypervolume, parse_bounds
from archbench.report.leaderboard import rank
from archbench.report.runs import DEFAULT_ROOT, RunInfo, load_runs
from archbench.report.zoo_anchors import (
    LatencySetting,
    ZooAnchor,
    default_anchors,
    measure_anchors,
)

BY = ("run", "sampler", "space")
DEFAULT_OBJECTIVES = "val_acc:max,macs:min"


@dataclass(frozen=True)
class GroupSummary:
    """One run, sampler or space of the report (``by``): its trials, front and hypervolume.

    ``hypervolume`` is the mean over the group's runs of each run's hypervolume (all in the
    report's box), so groups with different numbers of runs compare at equal trials per run.
    """

    by: str
    key: str
    runs: tuple[str, ...]
    counts: dict[str, int]
    trials: int
    front_size: int
    hypervolume: float | None
    hypervolume_runs: dict[str, float]
    best: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            self.by: self.key,
            "runs": list(self.runs),
            "trials": self.trials,
            "status_counts": self.counts,
            "front_size": self.front_size,
            "hypervolume": self.hypervolume,
            "hypervolume_per_run": self.hypervolume_runs,
            "best": self.best,
        }


@dataclass
class Report:
    """Everything a rendering needs; ``table`` is the ranked trial table (best first)."""

    objectives: tuple[Objective, ...]
    by: str
    table: pd.DataFrame
    groups: list[GroupSummary]
    box: Box | None
    runs: list[RunInfo]
    anchors: list[ZooAnchor] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def img_size(self) -> int | None:
        sizes = self.table["img_size"].dropna()
        return int(sizes.mode().iloc[0]) if not sizes.empty else None

    @property
    def dataset(self) -> str | None:
        values = self.table["dataset"].dropna()
        return str(values.mode().iloc[0]) if not values.empty else None

    def rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """JSON rows: each trial (best first) with run, trial_id, status, architecture, the
        objectives by name, params, macs, pareto_rank (None when not ranked) and pareto; then the
        zoo anchors (``kind`` "zoo", never on the front)."""
        out: list[dict[str, Any]] = []
        shown = self.table if top is None else self.table.head(top)
        for row in shown.to_dict("records"):
            item: dict[str, Any] = {
                "kind": "trial",
                "run": row["run"],
                "trial_id": row["trial_id"],
                "status": row["status"],
                "arch_summary": _plain(row.get("arch_summary")),
                "arch_hash": _plain(row.get("arch_hash")),
            }
            for o in self.objectives:
                item[o.name] = _plain(row.get(o.metric))
            for extra in ("params", "macs", "val_acc"):
                item.setdefault(extra, _plain(row.get(extra)))
            for name in ("params", "macs"):
                if item.get(name) is not None:
                    item[name] = int(item[name])  # pandas reads an int column with nulls as float
            if item.get("latency_ms") is not None:  # the figure and the evidence of its conditions
                item["latency_contended"] = bool(_plain(row.get("latency_contended")) or False)
            rank_ = int(row["pareto_rank"])
            item["pareto_rank"] = None if rank_ < 0 else rank_
            item["pareto"] = bool(row["pareto"])
            out.append(item)
        for anchor in self.anchors:
            item = {"kind": "zoo", "run": "zoo", "trial_id": anchor.name, "status": "reference", "img_size": anchor.img_size}
            item.update({"params": anchor.params, "macs": anchor.macs, "val_acc": None})
            for o in self.objectives:
                item[o.name] = {"latency_ms": anchor.latency_ms_median}.get(o.name, item.get(o.name))
            item.update({"pareto_rank": None, "pareto": False})
            out.append(item)
        return out

    def summary(self) -> dict[str, Any]:
        """The report without its rows: objectives, box, groups, anchors, warnings."""
        return {
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
            "by": self.by,
            "runs": [{"label": r.label, "path": str(r.path), "sampler": r.sampler, "space": r.space, "trials": r.trials} for r in self.runs],
            "hypervolume_box": self.box.to_dict() if self.box else None,
            "groups": [g.to_dict() for g in self.groups],
            "zoo": [a.to_dict() for a in self.anchors],
            "warnings": list(self.warnings),
        }


def make_report(
    paths: Sequence[str | Path] | None = None,
    *,
    objectives: str | Sequence[Objective] | None = None,
    by: str = "run",
    hv_bounds: str | None = None,
    zoo: bool | Sequence[str] = False,
    root: Path = DEFAULT_ROOT,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Read the runs at ``paths`` and rank, summarise and (optionally) anchor them.

    Example:
        ``demo_runs`` (the doctests' conftest.py writes it) holds an NSGA-II and a random run:

        >>> report = make_report([demo_runs / "nsga2-seed0", demo_runs / "random-seed0"], by="sampler")
        >>> {g.key: (g.front_size, round(g.hypervolume, 3)) for g in report.groups}
        {'nsga2': (2, 0.899), 'random': (2, 0.448)}
        >>> report.table.loc[report.table.pareto, ["run", "trial_id", "val_acc", "macs"]]  # the front of both
                   run trial_id  val_acc        macs
        0  nsga2-seed0    00000     0.91  1200000000
        1  nsga2-seed0    00001     0.85   600000000

    Args:
        paths: run folders (default: every run under ``root``).
        objectives: "val_acc:max,macs:min" or Objectives; default: the runs' own (their manifests).
        by: summarise per "run", "sampler" or "space".
        hv_bounds: "NAME=IDEAL:REFERENCE,…" fixes the hypervolume box (default: from the trials).
        zoo: True for the default anchors of the runs' layout, or preset names.
        cache: where zoo measurements are cached (default ``~/.cache/archbench``).
        progress: called with a line before each slow step (zoo measurements).

    Raises:
        ValueError: bad ``objectives``, ``by``, ``hv_bounds`` or zoo name, or no runs and no ``root``.
    """
    if by not in BY:
        raise UserError(f"--by: expected one of {', '.join(BY)}, got '{by}'")
    if isinstance(objectives, str):
        objectives = parse_objectives(objectives)
    if zoo and not isinstance(zoo, bool):
        from archbench.report.zoo_anchors import check_names

        check_names(list(zoo))
    loaded = load_runs(paths, root=root)
    warnings = list(loaded.warnings)
    chosen = tuple(objectives) if objectives else _common_objectives(loaded.runs, warnings)
    ranked = rank(loaded.frame, chosen)
    warnings.extend(_missing_objective_warnings(ranked, chosen))
    warnings.extend(_contended_latency_warnings(ranked))
    box = _box(ranked, chosen, hv_bounds)
    groups = _groups(ranked, chosen, by, box)
    anchors: list[ZooAnchor] = []
    if zoo and loaded.runs:
        names = default_anchors(_layouts(ranked)) if zoo is True else list(zoo)
        anchors = measure_anchors(
            names,
            img_size=_mode_int(ranked["img_size"]) or 224,
            latency=_latency_setting(ranked, warnings) if any(o.name == "latency_ms" for o in chosen) else None,
            cache=cache,
            progress=progress,
        )
    return Report(chosen, by, ranked, groups, box, loaded.runs, anchors, warnings)


def _common_objectives(runs: Sequence[RunInfo], warnings: list[str]) -> tuple[Objective, ...]:
    """The runs' own objectives when they agree; else those all runs share (with a warning)."""
    own = [(r, r.objectives) for r in runs if r.objectives]
    if not own:
        return parse_objectives(DEFAULT_OBJECTIVES)
    first = own[0][1]
    if all(o == first for _, o in own):
        return first
    common = tuple(o for o in first if all(o in objs for _, objs in own))
    described = "; ".join(f"{r.label}: {','.join(f'{o.name}:{o.direction}' for o in objs)}" for r, objs in own)
    if not common:
        raise UserError(f"the runs share no objective ({described}); pass --objectives")
    warnings.append(
        f"runs disagree on objectives ({described}); reporting on those they share: "
        f"{','.join(f'{o.name}:{o.direction}' for o in common)} (pass --objectives to choose)"
    )
    return common


def _contended_latency_warnings(ranked: pd.DataFrame) -> list[str]:
    """A line per run whose latencies were measured while other processes competed for the CPU."""
    if "latency_contended" not in ranked:
        return []
    lines = []
    for run, group in ranked[ranked["latency_contended"].fillna(False).astype(bool)].groupby("run", sort=False):
        busiest = group["latency_other_cores"].max()
        lines.append(
            f"{run}: {len(group)} latency figure(s) measured while other processes kept up to {busiest:.1f} cores busy "
            "(marked 'contended'): re-measure them on an idle machine before comparing"
        )
    return lines


def _missing_objective_warnings(ranked: pd.DataFrame, objectives: Sequence[Objective]) -> list[str]:
    lines = []
    ok = ranked[ranked["status"] == "ok"]
    for run, group in ok.groupby("run", sort=False):
        for o in objectives:
            if group[o.metric].isna().all():
                lines.append(f"{run}: no ok trial has a value for objective '{o.name}' (its trials are not ranked)")
    return lines


def _values(frame: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    ok = frame["status"] == "ok"
    return frame.loc[ok, [o.metric for o in objectives]].astype(float).to_numpy()


def _box(ranked: pd.DataFrame, objectives: Sequence[Objective], hv_bounds: str | None) -> Box | None:
    box = box_from_data(_values(ranked, objectives), objectives)
    if hv_bounds:
        box = parse_bounds(hv_bounds, objectives, box)
    return box


def _groups(ranked: pd.DataFrame, objectives: Sequence[Objective], by: str, box: Box | None) -> list[GroupSummary]:
    directions = [o.direction for o in objectives]
    keys = ranked[by].fillna("unknown").astype(str)
    summaries = []
    for key in dict.fromkeys(keys):  # first-seen order: the order runs were given in
        group = ranked[keys == key]
        values = _values(group, objectives)
        complete = values[~np.isnan(values).any(axis=1)]
        front = int((pareto_ranks(complete, directions) == 0).sum()) if len(complete) else 0
        per_run = {}
        if box is not None:
            for run, members in group.groupby("run", sort=False):
                per_run[str(run)] = hypervolume(_values(members, objectives), box)
        best: dict[str, float | None] = {}
        for k, o in enumerate(objectives):
            column = complete[:, k] if len(complete) else np.array([])
            best[o.name] = None if column.size == 0 else float(column.max() if o.direction == "max" else column.min())
        summaries.append(
            GroupSummary(
                by=by,
                key=key,
                runs=tuple(dict.fromkeys(group["run"].astype(str))),
                counts={k: int(v) for k, v in group["status"].value_counts().items()},
                trials=len(group),
                front_size=front,
                hypervolume=float(np.mean(list(per_run.values()))) if per_run else None,
                hypervolume_runs=per_run,
                best=best,
            )
        )
    return summaries


def _layouts(frame: pd.DataFrame) -> list[str]:
    import json

    layouts: list[str] = []
    for text in frame["arch_json"].dropna():
        try:
            layout = json.loads(text).get("layout")
        except (ValueError, AttributeError):
            continue
        if layout and layout not in layouts:
            layouts.append(layout)
    return layouts


def _latency_setting(frame: pd.DataFrame, warnings: list[str]) -> LatencySetting | None:
    """The conditions the runs timed trials under (the most common ones)."""
    import torch

    device = _mode(frame["latency_device"]) or "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        warnings.append(f"zoo: the runs timed latency on {device}, which this machine lacks; zoo anchors get no latency")
        return None
    return LatencySetting(
        batch_size=_mode_int(frame["latency_batch_size"]) or 1,
        device=str(device),
        threads=_mode_int(frame["latency_threads"]),
        dtype=str(_mode(frame["latency_dtype"]) or "float32"),
    )


def _mode(column: pd.Series) -> Any:
    values = column.dropna()
    return None if values.empty else values.mode().iloc[0]


def _mode_int(column: pd.Series) -> int | None:
    value = _mode(column)
    return None if value is None else int(value)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return None
    return value
