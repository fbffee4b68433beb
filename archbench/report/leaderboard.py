"""The leaderboard: trials of one or more runs ranked by Pareto front over the run's objectives,
crowding distance within a front, with a one-line architecture summary and status counts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from archbench.report.pareto import crowding_distance, pareto_ranks
from archbench.search.options import Objective, parse_objectives


def run_objectives(run_dir: Path) -> tuple[Objective, ...]:
    """The objectives a run searched with (its manifest), or the default pair."""
    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        try:
            items = json.loads(manifest.read_text())["objectives"]
            return tuple(Objective(o["name"], o["direction"]) for o in items)
        except (KeyError, ValueError, TypeError):
            pass
    return parse_objectives("val_acc:max,macs:min")


def rank(frame: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """``frame`` with ``pareto_rank`` (0 = front, -1 = not comparable: a missing objective or a
    status other than ok), ``pareto`` and ``crowding``, sorted best first."""
    frame = frame.copy()
    columns = [o.metric for o in objectives]
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    values = frame[columns].astype(float).to_numpy()
    eligible = (frame["status"] == "ok").to_numpy()
    values[~eligible] = np.nan
    directions = [o.direction for o in objectives]
    ranks = pareto_ranks(values, directions) if len(frame) else np.array([], dtype=int)
    frame["pareto_rank"] = ranks
    frame["pareto"] = ranks == 0
    crowd = np.zeros(len(frame))
    for r in set(ranks.tolist()) - {-1}:
        members = np.flatnonzero(ranks == r)
        crowd[members] = crowding_distance(values[members], directions)
    frame["crowding"] = crowd
    order_rank = np.where(ranks < 0, np.iinfo(np.int32).max, ranks)
    frame = frame.assign(_order=order_rank).sort_values(["_order", "crowding"], ascending=[True, False], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def status_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {run: group["status"].value_counts().to_dict() for run, group in frame.groupby("run")}


def print_leaderboard(run_dirs: Sequence[Path], *, top: int = 10, console: Console | None = None, objectives: Sequence[Objective] | None = None) -> pd.DataFrame:
    """Read, rank and print; returns the ranked frame."""
    from archbench.store import read_trials

    console = console or Console()
    frame = read_trials(list(run_dirs), on_bad="skip")
    objectives = tuple(objectives or run_objectives(Path(run_dirs[0])))
    ranked = rank(frame, objectives)
    names = ", ".join(f"{o.name} {'↑' if o.direction == 'max' else '↓'}" for o in objectives)
    table = Table(title=f"leaderboard ({names}; ★ = Pareto front)")
    for col in ("#", "", "run", "trial", "architecture", "params (M)", "GMACs", "latency (ms)", "val_acc", "status"):
        table.add_column(col, overflow="fold")
    for i, row in ranked.head(top).iterrows():
        latency = "–"
        if pd.notna(row.get("latency_ms_median")):
            latency = f"{row['latency_ms_median']:.1f} (b{int(row['latency_batch_size'])}, {row['latency_device']})"
        table.add_row(
            str(i + 1),
            "★" if row["pareto"] else "",
            str(row["run"]),
            str(row["trial_id"]),
            str(row.get("arch_summary") or ""),
            f"{row['params'] / 1e6:.2f}" if pd.notna(row.get("params")) else "–",
            f"{row['macs'] / 1e9:.2f}" if pd.notna(row.get("macs")) else "–",
            latency,
            f"{row['val_acc']:.3f}" if pd.notna(row.get("val_acc")) else "–",
            str(row["status"]),
        )
    console.print(table)
    return ranked
