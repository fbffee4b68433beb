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

    from archbench.report.summary import Report

# column, display scale, direction of the axis for metrics that are not objectives
_COLUMN = {"val_acc": "val_acc", "macs": "macs", "params": "params", "latency_ms": "latency_ms_median"}
_SCALE = {"val_acc": 100.0, "macs": 1e-9, "params": 1e-6, "latency_ms": 1.0}
_DIRECTION = {"val_acc": "max", "macs": "min", "params": "min", "latency_ms": "min"}
_ANCHOR_COLOUR = "0.35"


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
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(_title(report), x=0.01, ha="left", fontsize=10)
        fig.tight_layout(rect=(0, 0.05 + 0.04 * ((len(labels) - 1) // 3 if handles else 0), 1, 0.95))
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
    frame = report.table
    members = frame[(frame[report.by].fillna("unknown").astype(str) == key) & (frame["status"] == "ok")]
    points = members[[_COLUMN[x], _COLUMN[y]]].astype(float).to_numpy() * np.array([_SCALE[x], _SCALE[y]])
    points = points[~np.isnan(points).any(axis=1)]
    if len(points) == 0:
        return
    directions = [_direction(report, x), _direction(report, y)]
    on_front = pareto_ranks(points, directions) == 0
    ax.scatter(points[~on_front, 0], points[~on_front, 1], s=16, color=colour, alpha=0.35, linewidths=0)
    front = np.unique(points[on_front], axis=0)
    front = front[np.argsort(front[:, 0], kind="stable")]
    # The attainment boundary: each front point covers everything worse in both objectives.
    ax.step(front[:, 0], front[:, 1], where="post" if directions[0] == "min" else "pre", color=colour, linewidth=1.4, alpha=0.9)
    ax.scatter(front[:, 0], front[:, 1], s=34, color=colour, edgecolors="black", linewidths=0.6, zorder=3, label=label)


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
        for name, v in values.items():
            if v.get(cost) is None:
                continue
            line = ax.axvline if cost == x else ax.axhline
            line(v[cost], color=_ANCHOR_COLOUR, linestyle=(0, (3, 3)), linewidth=0.7, zorder=1)
            if cost == x:
                ax.text(v[cost], 1.0, f" {name}", transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="right",
                        fontsize=7, color=_ANCHOR_COLOUR)
            else:
                ax.text(1.0, v[cost], f"{name} ", transform=ax.get_yaxis_transform(), va="bottom", ha="right",
                        fontsize=7, color=_ANCHOR_COLOUR)
        return
    for name, v in values.items():
        if v.get(x) is None or v.get(y) is None:
            continue
        ax.scatter([v[x]], [v[y]], marker="D", s=26, color="white", edgecolors=_ANCHOR_COLOUR, linewidths=1.0, zorder=4)
        ax.annotate(name, (v[x], v[y]), xytext=(4, 3), textcoords="offset points", fontsize=7, color=_ANCHOR_COLOUR)


def _direction(report: Report, metric: str) -> str:
    for o in report.objectives:
        if o.name == metric:
            return o.direction
    return _DIRECTION[metric]


def _legend_label(group: object) -> str:
    hv = getattr(group, "hypervolume", None)
    ok = getattr(group, "counts", {}).get("ok", 0)
    text = f"{getattr(group, 'key')}  ({ok} ok"
    return text + (f", HV {hv:.3f})" if hv is not None else ")")


def _title(report: Report) -> str:
    objectives = ", ".join(f"{o.name} {'↑' if o.direction == 'max' else '↓'}" for o in report.objectives)
    note = "; dashed: zoo models measured here (no proxy accuracy)" if report.anchors else ""
    return f"Pareto fronts per {report.by} ({objectives}); outlined points: front, line: attained region{note}"


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
