"""Pareto plots of a report: one panel per objective pair (accuracy against cost first), each
run/sampler/space its own colour with its front as a step line, zoo anchors labelled.
"""
from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from archbench.report.pareto import pareto_ranks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from archbench.report.summary import GroupSummary, Report

# column, display scale, direction of the axis for metrics that are not objectives
_COLUMN = {"val_acc": "val_acc", "macs": "macs", "params": "params", "latency_ms": "latency_ms_median"}
_SCALE = {"val_acc": 100.0, "macs": 1e-9, "params": 1e-6, "latency_ms": 1.0}
_DIRECTION = {"val_acc": "max", "macs": "min", "params": "min", "latency_ms": "min"}
_ANCHOR_COLOUR = "0.35"
_MAX_LABELLED = 12  # front points per group that get their trial id written beside them


def panels(report: Report) -> list[tuple[str, str]]:
    """(x, y) metric pairs: accuracy against each cost first, then cost against cost; with zoo
    anchors, a params-vs-GMACs panel is added when no panel has two cost axes (the anchors have no
    proxy accuracy, so only there are they points rather than reference lines)."""
    names = [o.name for o in report.objectives]
    costs = [n for n in names if n != "val_acc"]
    pairs: list[tuple[str, str]] = []
    if "val_acc" in names:
        pairs.extend((c, "val_acc") for c in costs)
    pairs.extend(combinations(costs, 2))
    if not pairs:  # one objective: show it against the cost every trial has
        only = names[0]
        pairs.append(("macs" if only != "macs" else "params", only))
    if report.anchors and not any("val_acc" not in pair for pair in pairs):
        pairs.append(("macs", "params"))
    return pairs


def axis_label(report: Report, metric: str) -> str:
    if metric == "val_acc":
        return f"val accuracy, {report.dataset or 'proxy'} proxy (%)"
    if metric == "macs":
        return f"GMACs per image @ {report.img_size or '?'} px"
    if metric == "params":
        return "params (M)"
    batch, device = _latency_conditions(report)
    return f"latency (ms, batch {batch}, {device})"


def make_figure(report: Report) -> Figure:
    """The report's figure, drawn on the Agg canvas (no pyplot, no display, no global figure)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pairs = panels(report)
    cols = min(len(pairs), 3)
    rows = (len(pairs) + cols - 1) // cols
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.0 * cols, 3.9 * rows))
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False)
        colours = matplotlib.colormaps["tab10"]
        for ax, (x, y) in zip(axes.flat, pairs):
            for g, group in enumerate(report.groups):
                _draw_group(ax, report, group.key, x, y, colours(g % 10), _legend_label(group))
            _draw_anchors(ax, report, x, y)
            ax.set_xlabel(axis_label(report, x))
            ax.set_ylabel(axis_label(report, y))
            ax.grid(True, color="0.9", linewidth=0.6)
            ax.set_axisbelow(True)
        for ax in list(axes.flat)[len(pairs):]:
            ax.set_visible(False)
        if report.groups:
            axes.flat[0].legend(loc="best", frameon=True, framealpha=0.85, edgecolor="0.85", title=f"front per {report.by} (hypervolume)",
                                title_fontsize=7.5)
        fig.suptitle(_title(report), x=0.01, ha="left", fontsize=9.5)
        fig.tight_layout()
    return fig


def save_plot(report: Report, target: str | Path | BinaryIO, *, dpi: int = 130) -> None:
    """Write the report's figure as PNG to a path or a binary file object."""
    import matplotlib

    fig = make_figure(report)
    with matplotlib.rc_context(_STYLE):
        fig.savefig(target, format="png", dpi=dpi, metadata={"Software": "archbench report"})


def png_bytes(report: Report, *, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    save_plot(report, buffer, dpi=dpi)
    return buffer.getvalue()


def _draw_group(ax: Axes, report: Report, key: str, x: str, y: str, colour: object, label: str) -> None:
    """The group's ok trials; outlined: its front over all objectives; step line: the boundary of
    the region its trials attain in this panel's two objectives (for a pair of objectives only)."""
    frame = report.table
    members = frame[(frame[report.by].fillna("unknown").astype(str) == key) & (frame["status"] == "ok")]
    members = members.dropna(subset=[_COLUMN[x], _COLUMN[y]])
    if members.empty:
        return
    points = members[[_COLUMN[x], _COLUMN[y]]].astype(float).to_numpy() * np.array([_SCALE[x], _SCALE[y]])
    objectives = [o.metric for o in report.objectives]
    all_values = members.reindex(columns=objectives).astype(float).to_numpy()
    on_front = pareto_ranks(all_values, [o.direction for o in report.objectives]) == 0
    ax.scatter(points[~on_front, 0], points[~on_front, 1], s=18, color=colour, alpha=0.45, linewidths=0)
    ax.scatter(points[on_front, 0], points[on_front, 1], s=34, color=colour, edgecolors="black", linewidths=0.6, zorder=3, label=label)
    names = {o.name for o in report.objectives}
    if {x, y} <= names:
        directions = [_direction(report, x), _direction(report, y)]
        boundary = np.unique(points[pareto_ranks(points, directions) == 0], axis=0)
        boundary = boundary[np.argsort(boundary[:, 0], kind="stable")]
        # Each point covers everything worse in both objectives; the step traces the union.
        ax.step(boundary[:, 0], boundary[:, 1], where="post" if directions[0] == "min" else "pre", color=colour, linewidth=1.4, alpha=0.9)
    if on_front.sum() <= _MAX_LABELLED:
        # Trial ids on the front tie the plot to the leaderboard rows.
        for (px, py), trial in zip(points[on_front], members["trial_id"].astype(str)[on_front]):
            ax.annotate(trial, (px, py), xytext=(4, -9), textcoords="offset points", fontsize=6.5, color=colour)


def _draw_anchors(ax: Axes, report: Report, x: str, y: str) -> None:
    if not report.anchors:
        return
    values = {
        a.name: {"macs": a.macs * _SCALE["macs"], "params": a.params * _SCALE["params"], "latency_ms": a.latency_ms_median}
        for a in report.anchors
    }
    if "val_acc" in (x, y):
        # No proxy accuracy for a zoo model: a reference line at its cost, labelled at the top.
        cost = y if x == "val_acc" else x
        placed = sorted((v[cost], name) for name, v in values.items() if v.get(cost) is not None)
        lo, hi = _span(ax, report, cost, [p for p, _ in placed], vertical=cost == x)
        last_at_top = -np.inf
        for position, name in placed:
            line = ax.axvline if cost == x else ax.axhline
            line(position, color=_ANCHOR_COLOUR, linestyle=(0, (3, 3)), linewidth=0.7, zorder=1)
            # Labels closer than ~3% of the axis would overprint: the next one goes to the other end.
            at_top = (position - last_at_top) / (hi - lo or 1.0) > 0.03
            if at_top:
                last_at_top = position
            if cost == x:
                ax.text(position, 0.99 if at_top else 0.01, f"{name} ", transform=ax.get_xaxis_transform(), rotation=90,
                        va="top" if at_top else "bottom", ha="right", fontsize=7, color=_ANCHOR_COLOUR)
            else:
                ax.text(0.99 if at_top else 0.01, position, name, transform=ax.get_yaxis_transform(), va="bottom",
                        ha="right" if at_top else "left", fontsize=7, color=_ANCHOR_COLOUR)
        return
    points = sorted((v[x], v[y], name) for name, v in values.items() if v.get(x) is not None and v.get(y) is not None)
    xlo, xhi = _span(ax, report, x, [p[0] for p in points], vertical=True)
    ylo, yhi = _span(ax, report, y, [p[1] for p in points], vertical=False)
    previous: tuple[float, float] | None = None
    flip = False
    for px, py, name in points:
        ax.scatter([px], [py], marker="D", s=26, color="white", edgecolors=_ANCHOR_COLOUR, linewidths=1.0, zorder=4)
        # A neighbour within ~6% of both axes: alternate the label to the other side to keep both legible.
        close = previous is not None and abs(px - previous[0]) / (xhi - xlo or 1) < 0.06 and abs(py - previous[1]) / (yhi - ylo or 1) < 0.06
        flip = not flip if close else False
        offset, ha = ((-5, -10), "right") if flip else ((5, 3), "left")
        ax.annotate(name, (px, py), xytext=offset, textcoords="offset points", fontsize=7, color=_ANCHOR_COLOUR, ha=ha)
        previous = (px, py)


def _span(ax: Axes, report: Report, metric: str, anchors: list[float], *, vertical: bool) -> tuple[float, float]:
    """The data range the axis will show (trials and anchors), before matplotlib sets its limits."""
    values = report.table.loc[report.table["status"] == "ok", _COLUMN[metric]].dropna().astype(float) * _SCALE[metric]
    everything = [*values.tolist(), *anchors]
    return (min(everything), max(everything)) if everything else (0.0, 1.0)


def _direction(report: Report, metric: str) -> str:
    for o in report.objectives:
        if o.name == metric:
            return o.direction
    return _DIRECTION[metric]


def _legend_label(group: GroupSummary) -> str:
    ok = group.counts.get("ok", 0)
    hv = f", HV {group.hypervolume:.3f}" if group.hypervolume is not None else ""
    return f"{group.key} ({ok} ok{hv})"


def _title(report: Report) -> str:
    objectives = ", ".join(f"{o.name} {'↑' if o.direction == 'max' else '↓'}" for o in report.objectives)
    note = "\ndashed / ◇: zoo models measured here (never trained on the proxy task)" if report.anchors else ""
    return f"Pareto fronts ({objectives}){note}"


def _latency_conditions(report: Report) -> tuple[str, str]:
    frame = report.table
    batch = frame["latency_batch_size"].dropna()
    device = frame["latency_device"].dropna()
    return (str(int(batch.mode().iloc[0])) if not batch.empty else "?", str(device.mode().iloc[0]) if not device.empty else "?")


_STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
}
