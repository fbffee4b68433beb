"""The leaderboard: trials of one or more runs ranked by Pareto front over the objectives, crowding
distance within a front, with a one-line architecture summary and status counts.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from archbench.objectives import DEFAULT_OBJECTIVES, KNOWN, Objective, parse_objectives
from archbench.pareto import crowding_distance, pareto_ranks
from archbench.store.run import RunFolder, manifest_objectives

if TYPE_CHECKING:
    from archbench.report.zoo_anchors import ZooAnchor

# Column headers of the leaderboard, shared by the terminal, Markdown and HTML renderings; an
# objective without a column here (a zero-cost score) gets one before "status" (see headers()).
HEADERS = ("#", "front", "run", "trial", "architecture", "params (M)", "GMACs", "latency (ms)", "val acc (%)", "status")
RIGHT_ALIGNED = {"#", "params (M)", "GMACs", "latency (ms)", "val acc (%)"}


def _extra(objectives: Sequence[Objective]) -> list[Objective]:
    return [o for o in objectives if KNOWN[o.name].label not in HEADERS]


def headers(objectives: Sequence[Objective] = ()) -> tuple[str, ...]:
    """HEADERS, with a column for each of ``objectives`` that has none there.

    Example:
        >>> headers(parse_objectives("synflow:max,macs:min"))[-3:]
        ('val acc (%)', 'synflow', 'status')
    """
    return (*HEADERS[:-1], *(KNOWN[o.name].label for o in _extra(objectives)), HEADERS[-1])


def right_aligned(objectives: Sequence[Objective] = ()) -> set[str]:
    """The numeric columns of :func:`headers`."""
    return RIGHT_ALIGNED | {KNOWN[o.name].label for o in _extra(objectives)}


def run_objectives(run_dir: Path) -> tuple[Objective, ...]:
    """The objectives a run searched with (those of its manifest archbench knows), or the default pair."""
    try:
        objectives, _ = manifest_objectives(RunFolder(run_dir).read_manifest_data() or {})
    except ValueError:  # an unreadable manifest: the report warns about it elsewhere
        objectives = None
    return objectives or parse_objectives(DEFAULT_OBJECTIVES)


def rank(frame: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """``frame`` with ``pareto_rank`` (0 = front, -1 = not comparable: a missing objective or a
    status other than ok), ``pareto`` and ``crowding``, sorted best first.

    Trials equal in every objective (one architecture evaluated twice, or a tie) share a rank.

    Example:
        >>> import pandas as pd
        >>> from archbench.objectives import parse_objectives
        >>> trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "status": ["ok", "ok", "ok", "failed"],
        ...                        "val_acc": [0.80, 0.91, 0.85, None], "macs": [1.5e9, 1.2e9, 0.6e9, None]})
        >>> rank(trials, parse_objectives("val_acc:max,macs:min"))[["trial_id", "pareto_rank", "pareto"]]
          trial_id  pareto_rank  pareto
        0        b            0    True
        1        c            0    True
        2        a            1   False
        3        d           -1   False
    """
    frame = frame.copy()
    columns = [o.metric for o in objectives]
    for column in columns:
        if column not in frame:
            frame[column] = np.nan
    values = frame[columns].to_numpy(dtype=float, copy=True)  # written below; pandas may hand out read-only views
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
    return {run: {k: int(v) for k, v in group["status"].value_counts().items()} for run, group in frame.groupby("run", sort=False)}


def format_counts(counts: dict[str, int]) -> str:
    """``{"ok": 4, "rejected": 1}`` -> ``"ok 4 · rejected 1"`` (ok first)."""
    order = sorted(counts, key=lambda s: (s != "ok", s))
    return " · ".join(f"{s} {counts[s]}" for s in order) or "no trials"


def display_rows(
    ranked: pd.DataFrame, *, top: int | None = None, anchors: Sequence[ZooAnchor] = (), objectives: Sequence[Objective] = ()
) -> list[dict[str, str]]:
    """Leaderboard rows as display strings keyed by ``headers(objectives)``: trials (best first,
    ``top`` of them) then zoo anchors (front "zoo", no accuracy: they were never trained on the
    proxy task, nor scored)."""
    rows = []
    extra = _extra(objectives)
    shown = ranked if top is None else ranked.head(top)
    for i, row in enumerate(shown.to_dict("records")):
        rank_ = int(row["pareto_rank"])
        rows.append(
            {
                "#": str(i + 1),
                "front": "★" if rank_ == 0 else ("–" if rank_ < 0 else str(rank_)),
                "run": str(row["run"]),
                "trial": str(row["trial_id"]),
                "architecture": str(row.get("arch_summary") or row.get("arch_name") or "–"),
                "params (M)": _num(row.get("params"), 1e6),
                "GMACs": _num(row.get("macs"), 1e9),
                "latency (ms)": _latency(row.get("latency_ms_median"), row.get("latency_batch_size"), row.get("latency_device"), row.get("latency_contended")),
                "val acc (%)": _num(row.get("val_acc"), 0.01, digits=1),
                **{KNOWN[o.name].label: _shown(o, row.get(o.metric)) for o in extra},
                "status": str(row["status"]),
            }
        )
    for anchor in anchors:
        from archbench import zoo

        rows.append(
            {
                "#": "",
                "front": "zoo",
                "run": "zoo",
                "trial": anchor.name,
                "architecture": zoo.get(anchor.name).summary(),
                "params (M)": _num(anchor.params, 1e6),
                "GMACs": _num(anchor.macs, 1e9),
                "latency (ms)": _latency(anchor.latency_ms_median, anchor.latency_batch_size, anchor.latency_device),
                "val acc (%)": "–",
                **{KNOWN[o.name].label: "–" for o in extra},
                "status": f"reference @{anchor.img_size}px",
            }
        )
    return rows


def leaderboard_table(rows: Sequence[dict[str, str]], *, title: str | None = None, objectives: Sequence[Objective] = ()) -> Table:
    """A rich Table of :func:`display_rows` output (zoo anchors in their own section)."""
    table = Table(title=title, title_justify="left")
    numeric = right_aligned(objectives)
    for header in headers(objectives):
        table.add_column(
            header,
            justify="right" if header in numeric else "left",
            no_wrap=header != "architecture",
            min_width=24 if header == "architecture" else None,
            overflow="fold",
        )
    in_zoo = False
    for row in rows:
        if row["front"] == "zoo" and not in_zoo:
            table.add_section()
            in_zoo = True
        table.add_row(*(row[h] for h in headers(objectives)))
    return table


def objectives_caption(objectives: Sequence[Objective]) -> str:
    return ", ".join(f"{o.name} {'↑' if o.direction == 'max' else '↓'}" for o in objectives)


def print_table(console: Console, renderable: Any) -> None:
    """Print wide tables unwrapped when the output is a file or pipe (rich assumes 80 columns there)."""
    if console.is_terminal or console.width >= 160:
        console.print(renderable)
        return
    width = console.width
    console.width = 200
    try:
        console.print(renderable)
    finally:
        console.width = width


def print_leaderboard(
    run_dirs: Sequence[Path], *, top: int = 10, console: Console | None = None, objectives: Sequence[Objective] | None = None
) -> pd.DataFrame:
    """Read, rank and print; returns the ranked frame."""
    from archbench.store import read_trials

    console = console or Console()
    frame = read_trials(list(run_dirs), on_bad="skip")
    objectives = tuple(objectives or run_objectives(Path(run_dirs[0])))
    ranked = rank(frame, objectives)
    title = f"leaderboard ({objectives_caption(objectives)}; ★ = Pareto front)"
    print_table(console, leaderboard_table(display_rows(ranked, top=top, objectives=objectives), title=title, objectives=objectives))
    return ranked


def _num(value: Any, scale: float, digits: int = 2) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value) / scale:.{digits}f}"


def _shown(objective: Objective, value: Any) -> str:
    return "–" if value is None or pd.isna(value) else objective.show(float(value))


def _latency(median: Any, batch: Any, device: Any, contended: Any = None) -> str:
    if median is None or pd.isna(median):
        return "–"
    busy = "contended" if contended is not None and not pd.isna(contended) and bool(contended) else None  # other work competed: not the model's alone
    conditions = ", ".join(str(c) for c in (f"b{int(batch)}" if batch is not None and not pd.isna(batch) else None, device, busy) if c and not pd.isna(c))
    return f"{float(median):.1f} ({conditions})" if conditions else f"{float(median):.1f}"
