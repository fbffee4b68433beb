"""Pareto plots of a report: one panel per objective pair (accuracy against cost first), each
run/sampler/space its own colour with its front as a step line, zoo anchors labelled.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Sequence

import numpy as np

from archbench.objectives import KNOWN, OBJECTIVES, Objective
from archbench.pareto import pareto_ranks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from archbench.report.summary import GroupSummary, Report

# column, display scale, direction of the axis for metrics that are not objectives
_COLUMN = {name: Objective(name, direction).metric for name, direction in OBJECTIVES.items()}
_SCALE = {name: info.scale for name, info in KNOWN.items()}
_DIRECTION = OBJECTIVES
_ANCHOR_COLOUR = "0.35"
_MAX_LABELLED = 12  # front points per group that get their trial id written beside them


def _scored(metric: str) -> bool:
    """Accuracy and the zero-cost scores: properties of a trained or initialised proxy, which zoo
    anchors lack (the rest are costs of the architecture)."""
    return KNOWN[metric].needs is not None


def panels(report: Report) -> list[tuple[str, str]]:
    """(x, y) metric pairs: each score (accuracy, zero-cost) against each cost first, then cost
    against cost (score against score when there is no cost); with zoo anchors, a params-vs-GMACs
    panel is added when no panel has two cost axes (the anchors have no proxy accuracy, so only
    there are they points rather than reference lines)."""
    names = [o.name for o in report.objectives]
    scores = [n for n in names if _scored(n)]
    costs = [n for n in names if not _scored(n)]
    pairs: list[tuple[str, str]] = [(c, s) for s in scores for c in costs]
    pairs.extend(combinations(costs, 2))
    if not costs:
        pairs.extend(combinations(scores, 2))
    if not pairs:  # one objective: show it against the cost every trial has
        only = names[0]
        pairs.append(("macs" if only != "macs" else "params", only))
    if report.anchors and all(_scored(x) or _scored(y) for x, y in pairs):
        pairs.append(("macs", "params"))
    return pairs


def axis_label(report: Report, metric: str) -> str:
    if metric == "val_acc":
        return f"val accuracy, {report.dataset or 'proxy'} proxy (%)"
    if metric == "macs":
        return f"GMACs per image @ {report.img_size or '?'} px"
    if metric == "params":
        return "params (M)"
    if _scored(metric):  # val_acc is handled above: a zero-cost score
        return f"{metric} of the proxy at initialisation (training-free)"
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
        # Zoo names stand on top of the accuracy panels: give them their own margin.
        fig = Figure(figsize=(5.0 * cols, (3.9 + (1.1 if report.anchors else 0.0)) * rows))
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False)
        colours = matplotlib.colormaps["tab10"]
        labels: dict[Axes, list[_Label]] = {}
        from archbench.report.screening import draw_pool, load_pools

        pools = load_pools(report.runs)
        for ax, (x, y) in zip(axes.flat, pairs):
            labels[ax] = []
            if pools and x in ("macs", "params"):
                draw_pool(ax, pools, x, _SCALE[x])  # the candidates the trained trials were chosen from
            for g, group in enumerate(report.groups):
                labels[ax] += _draw_group(ax, report, group.key, x, y, colours(g % 10), _legend_label(group))
            labels[ax] += _draw_anchors(ax, report, x, y)
            ax.set_xlabel(axis_label(report, x))
            ax.set_ylabel(axis_label(report, y))
            ax.grid(True, color="0.9", linewidth=0.6)
            ax.set_axisbelow(True)
        for ax in list(axes.flat)[len(pairs):]:
            ax.set_visible(False)
        if axes.flat[0].get_legend_handles_labels()[0]:
            axes.flat[0].legend(loc="best", frameon=True, framealpha=0.85, edgecolor="0.85", title=f"front per {report.by} (hypervolume)",
                                title_fontsize=7.5)
        fig.suptitle(_title(report), x=0.01, ha="left", fontsize=9.5)
        fig.tight_layout()
        renderer = fig.canvas.get_renderer()
        for ax, requests in labels.items():
            _place_labels(ax, requests, renderer)
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


def _draw_group(ax: Axes, report: Report, key: str, x: str, y: str, colour: object, label: str) -> list[_Label]:
    """The group's ok trials; outlined: its front over all objectives; step line: the boundary of
    the region its trials attain in this panel's two objectives (for a pair of objectives only)."""
    frame = report.table
    members = frame[(frame[report.by].fillna("unknown").astype(str) == key) & (frame["status"] == "ok")]
    members = members.dropna(subset=[_COLUMN[x], _COLUMN[y]])
    if members.empty:
        return []
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
        xs, ys = boundary[:, 0], boundary[:, 1]
        where = "post" if directions[0] == "min" else "pre"
        reference = _reference(report, x, y)
        if reference is not None:
            # Close the region at the hypervolume's reference point: the shaded area is what the
            # run's hypervolume measures (in this panel's two objectives).
            rx, ry = reference
            if where == "post":
                xs, ys = np.r_[xs[0], xs, rx], np.r_[ry, ys, ys[-1]]
            else:
                xs, ys = np.r_[rx, xs, xs[-1]], np.r_[ys[0], ys, ry]
            ax.fill_between(xs, ys, ry, step=where, color=colour, alpha=0.07, linewidth=0)
        # Each point covers everything worse in both objectives; the step traces the union.
        ax.step(xs, ys, where=where, color=colour, linewidth=1.4, alpha=0.9)
    if on_front.sum() > _MAX_LABELLED:
        return []
    # Trial ids on the front tie the plot to the leaderboard rows.
    return [_Label(px, py, trial, colour, 6.5) for (px, py), trial in zip(points[on_front], members["trial_id"].astype(str)[on_front])]


def _draw_anchors(ax: Axes, report: Report, x: str, y: str) -> list[_Label]:
    if not report.anchors:
        return []
    values = {
        a.name: {"macs": a.macs * _SCALE["macs"], "params": a.params * _SCALE["params"], "latency_ms": a.latency_ms_median}
        for a in report.anchors
    }
    if not (_scored(x) or _scored(y)):
        points = [(v[x], v[y], name) for name, v in values.items() if v.get(x) is not None and v.get(y) is not None]
        for px, py, _ in points:
            ax.scatter([px], [py], marker="D", s=26, color="white", edgecolors=_ANCHOR_COLOUR, linewidths=1.0, zorder=4)
        return [_Label(px, py, name, _ANCHOR_COLOUR, 7.0) for px, py, name in points]
    # No proxy accuracy for a zoo model: a reference line at its cost, named on a secondary axis
    # outside the panel (names of lines closer than ~3% of the axis are joined into one label).
    if _scored(x) and _scored(y):
        return []
    cost = y if _scored(x) else x
    placed = sorted((v[cost], name) for name, v in values.items() if v.get(cost) is not None)
    lo, hi = _span(report, cost, [p for p, _ in placed])
    clusters: list[list[tuple[float, str]]] = []
    for position, name in placed:
        line = ax.axvline if cost == x else ax.axhline
        line(position, color=_ANCHOR_COLOUR, linestyle=(0, (3, 3)), linewidth=0.7, zorder=1)
        if clusters and (position - clusters[-1][-1][0]) / (hi - lo or 1.0) < 0.03:
            clusters[-1].append((position, name))
        else:
            clusters.append([(position, name)])
    ticks = [float(np.mean([p for p, _ in c])) for c in clusters]
    names = [" / ".join(n for _, n in c) for c in clusters]
    secondary = ax.secondary_xaxis("top") if cost == x else ax.secondary_yaxis("right")
    if cost == x:
        secondary.set_xticks(ticks, labels=names, rotation=90, fontsize=7, color=_ANCHOR_COLOUR)
    else:
        secondary.set_yticks(ticks, labels=names, fontsize=7, color=_ANCHOR_COLOUR)
    secondary.tick_params(length=2, color=_ANCHOR_COLOUR)
    secondary.spines[:].set_visible(False)
    return []


@dataclass(frozen=True)
class _Label:
    x: float
    y: float
    text: str
    colour: object
    size: float


# Offsets (points) tried in turn for a point label: right-up, right-down, left-up, left-down, above,
# below; then the same a little further out, for crowded corners.
_RING = ((4, 2, "left", "bottom"), (4, -2, "left", "top"), (-4, 2, "right", "bottom"),
         (-4, -2, "right", "top"), (0, 5, "center", "bottom"), (0, -5, "center", "top"))
_CANDIDATES = _RING + tuple((dx * 2.5, dy * 3.5, ha, va) for dx, dy, ha, va in _RING)


def _place_labels(ax: Axes, labels: Sequence[_Label], renderer: object) -> None:
    """Write each label at the first offset where it overlaps no earlier label, no marker and stays
    inside the panel (measured on the rendered text); a label with no such offset is left out."""
    from matplotlib.transforms import Bbox

    ax.get_xlim(), ax.get_ylim()  # settle pending autoscaling before mapping data to pixels
    box = ax.get_window_extent(renderer)
    marker = 3.5 * ax.figure.dpi / 72  # half a marker, in pixels
    taken = [text.get_window_extent(renderer) for text in ax.texts]  # e.g. the zoo reference-line labels
    for label in labels:
        cx, cy = ax.transData.transform((label.x, label.y))
        taken.append(Bbox([[cx - marker, cy - marker], [cx + marker, cy + marker]]))
    for label in labels:
        for i, (dx, dy, ha, va) in enumerate(_CANDIDATES):
            text = ax.annotate(label.text, (label.x, label.y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=label.size, color=label.colour)
            extent = text.get_window_extent(renderer).padded(1.5)  # a hair of air between labels
            inside = box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
            if inside and not any(extent.overlaps(other) for other in taken):
                taken.append(extent)
                break
            text.remove()
        # No free spot: leave the point unlabelled rather than overprint (the tables name every row).


def _span(report: Report, metric: str, anchors: list[float]) -> tuple[float, float]:
    """The data range the axis will show (trials and anchors), before matplotlib sets its limits."""
    values = report.table.loc[report.table["status"] == "ok", _COLUMN[metric]].dropna().astype(float) * _SCALE[metric]
    everything = [*values.tolist(), *anchors]
    return (min(everything), max(everything)) if everything else (0.0, 1.0)


def _reference(report: Report, x: str, y: str) -> tuple[float, float] | None:
    """The hypervolume box's reference point in this panel's display units, if both axes are in it."""
    box = report.box
    if box is None or x not in box.names or y not in box.names:
        return None
    return box.reference[box.names.index(x)] * _SCALE[x], box.reference[box.names.index(y)] * _SCALE[y]


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
