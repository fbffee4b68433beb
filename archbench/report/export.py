"""Renderings of a Report: terminal tables (rich), Markdown, CSV, JSON rows and one self-contained
HTML page with the plot embedded, so a report can be pasted, parsed or attached as it is.
"""
from __future__ import annotations

import base64
import html
import io
import json
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

from archbench.objectives import KNOWN
from archbench.report.hypervolume import IMPLEMENTATION
from archbench.report.leaderboard import (
    display_rows,
    format_counts,
    headers,
    leaderboard_table,
    objectives_caption,
    print_table,
    right_aligned,
)

if TYPE_CHECKING:
    from archbench.report.summary import GroupSummary, Report

FORMATS = ("table", "md", "csv", "json", "html")
LEGEND = "★ = Pareto front over all runs shown (rank 0); a number = Pareto rank; – = not ranked (not ok, or an objective missing)"
# Each objective's label, display scale, format and unit: archbench.objectives.KNOWN.


def headline(report: Report) -> str:
    trials = len(report.table)
    runs = len(report.runs)
    parts = [f"{runs} run{'s' * (runs != 1)}, {trials} trial{'s' * (trials != 1)}", f"objectives: {objectives_caption(report.objectives)}"]
    if report.img_size:
        parts.append(f"MACs per image at {report.img_size} px")
    if report.dataset:
        parts.append(f"val acc on the {report.dataset} proxy task")
    return "; ".join(parts)


def group_headers(report: Report) -> tuple[str, ...]:
    first = ("run", "sampler", "space") if report.by == "run" else (report.by, "runs")
    best = tuple(f"best {KNOWN[o.name].label}" for o in report.objectives)
    return (*first, "trials", "front", "hypervolume", *best)


def group_rows(report: Report) -> list[dict[str, str]]:
    rows = []
    info = {r.label: r for r in report.runs}
    for g in report.groups:
        row: dict[str, str] = {report.by: g.key}
        if report.by == "run":
            run = info.get(g.key)
            row["sampler"] = (run.sampler if run else None) or "–"
            row["space"] = (run.space if run else None) or "–"
        else:
            row["runs"] = str(len(g.runs))
        row["trials"] = f"{g.trials} ({format_counts(g.counts)})"
        row["front"] = str(g.front_size)
        row["hypervolume"] = _hv(g)
        for o in report.objectives:
            value = g.best.get(o.name)
            row[f"best {KNOWN[o.name].label}"] = "–" if value is None else o.show(value)
        rows.append(row)
    return rows


def hypervolume_note(report: Report) -> str:
    if report.box is None:
        return "hypervolume: no ok trial has every objective, so there is no front to measure."
    box = report.box
    pairs = ", ".join(f"{n} {_show(n, i)} → {_show(n, r)}" for n, i, r in zip(box.names, box.ideal, box.reference))
    origin = (
        "the best value of each objective over the ok trials shown → their worst plus 10% of the range"
        if box.source == "data"
        else "given by --hv-bounds"
    )
    per = "" if report.by == "run" else f" For each {report.by}: the mean of its runs' hypervolumes."
    return (
        f"Hypervolume ({IMPLEMENTATION}) of each run's trials in one normalised box, "
        f"ideal → reference point: {pairs} ({origin}); each objective maps ideal → 0, reference → 1, so 1.0 "
        f"would be one trial at the ideal in every objective.{per} Same box elsewhere: --hv-bounds '{box.flag()}'."
    )


def anchors_note(report: Report) -> str:
    if not report.anchors:
        return ""
    cached = sum(a.cached for a in report.anchors)
    return (
        f"Zoo rows: published architectures built and measured on this machine at {report.anchors[0].img_size} px "
        f"({cached} of {len(report.anchors)} from the cache); they were never trained on the proxy task, so they have "
        f"no val acc and no Pareto rank."
    )


def print_report(report: Report, console: Console, *, top: int | None = 25) -> None:
    """The terminal rendering: headline, leaderboard, per-run/sampler/space summary, notes."""
    console.print(f"[bold]archbench report[/]: {headline(report)}")
    rows = display_rows(report.table, top=top, anchors=report.anchors, objectives=report.objectives)
    shown = min(len(report.table), top) if top is not None else len(report.table)
    title = f"leaderboard ({shown} of {len(report.table)} trials)"
    print_table(console, leaderboard_table(rows, title=title, objectives=report.objectives))
    console.print(LEGEND, style="dim")
    table = Table(title=f"per {report.by}", title_justify="left")
    for header in group_headers(report):
        table.add_column(header, justify="right" if header in ("front", "hypervolume", "runs") or header.startswith("best") else "left", no_wrap=True)
    for row in group_rows(report):
        table.add_row(*(row[h] for h in group_headers(report)))
    print_table(console, table)
    console.print(hypervolume_note(report), style="dim")
    if report.anchors:
        console.print(anchors_note(report), style="dim")


def to_markdown(report: Report, *, top: int | None = None, plot_path: str | None = None) -> str:
    lines = ["# archbench report", "", headline(report) + ".", "", "## Leaderboard", ""]
    rows = display_rows(report.table, top=top, anchors=report.anchors, objectives=report.objectives)
    lines += _md_table(headers(report.objectives), rows, right_aligned(report.objectives))
    lines += ["", LEGEND + ".", ""]
    if report.anchors:
        lines += [anchors_note(report), ""]
    lines += [f"## Per {report.by}", ""]
    lines += _md_table(group_headers(report), group_rows(report), {"front", "hypervolume", "runs"})
    lines += ["", hypervolume_note(report), ""]
    if plot_path:
        lines += [f"![Pareto fronts]({plot_path})", ""]
    return "\n".join(lines)


def to_csv(report: Report, *, top: int | None = None) -> str:
    """One line per trial (best first) then per zoo anchor, raw numbers in the schema's units."""
    shown = report.table if top is None else report.table.head(top)
    columns = [
        "run", "trial_id", "status", "pareto_rank", "pareto", "crowding", "arch_summary", "arch_hash", "params", "macs",
        "latency_ms_median", "latency_ms_p90", "latency_batch_size", "latency_device", "latency_contended", "val_acc", "img_size", "dataset",
        "sampler", "space",
    ]
    scores = [o.metric for o in report.objectives if o.metric not in columns]  # zero-cost objectives
    columns[columns.index("val_acc") + 1:columns.index("val_acc") + 1] = scores
    frame = shown.reindex(columns=columns).copy()
    frame.insert(0, "position", range(1, len(frame) + 1))
    frame.insert(1, "kind", "trial")
    frame["pareto_rank"] = frame["pareto_rank"].astype("Int64").where(frame["pareto_rank"] >= 0)
    for column in ("params", "macs", "latency_batch_size", "img_size"):
        frame[column] = frame[column].astype("Float64").round().astype("Int64")
    if report.anchors:
        zoo = pd.DataFrame(
            [
                {
                    "kind": "zoo", "run": "zoo", "trial_id": a.name, "status": "reference", "pareto": False,
                    "params": a.params, "macs": a.macs, "latency_ms_median": a.latency_ms_median, "latency_ms_p90": a.latency_ms_p90,
                    "latency_batch_size": a.latency_batch_size, "latency_device": a.latency_device, "img_size": a.img_size,
                }
                for a in report.anchors
            ]
        )
        frame = pd.concat([frame, zoo.astype({"params": "Int64", "macs": "Int64", "img_size": "Int64"})], ignore_index=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue()


def to_json(report: Report, *, top: int | None = None) -> str:
    return json.dumps(report.rows(top), indent=2, ensure_ascii=False, default=_json_default) + "\n"


def summary_json(report: Report) -> str:
    return json.dumps(report.summary(), indent=2, ensure_ascii=False, default=_json_default) + "\n"


def to_html(report: Report, *, top: int | None = None, png: bytes | None = None, notes: Sequence[str] = ()) -> str:
    """One self-contained page: tables, notes and the plot as a base64 PNG (no external files);
    ``notes`` (e.g. the fidelity verdicts of the spaces) are listed after the tables."""
    from archbench.report.plot import png_bytes

    png = png if png is not None else png_bytes(report)
    image = base64.b64encode(png).decode("ascii")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>archbench report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>archbench report</h1>",
        f"<p>{html.escape(headline(report))}.</p>",
        f'<img alt="Pareto fronts" src="data:image/png;base64,{image}">',
        "<h2>Leaderboard</h2>",
        _html_table(
            headers(report.objectives),
            display_rows(report.table, top=top, anchors=report.anchors, objectives=report.objectives),
            right_aligned(report.objectives),
        ),
        f'<p class="note">{html.escape(LEGEND)}. {html.escape(anchors_note(report))}</p>',
        f"<h2>Per {html.escape(report.by)}</h2>",
        _html_table(group_headers(report), group_rows(report), {"front", "hypervolume", "runs"}),
        f'<p class="note">{html.escape(hypervolume_note(report))}</p>',
    ]
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f'<h2>Fidelity of the spaces</h2><ul class="note">{items}</ul>')
    if report.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
        parts.append(f'<h2>Skipped</h2><ul class="note">{items}</ul>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_table(headers: Sequence[str], rows: Sequence[dict[str, str]], right: set[str]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if h in right or h.startswith("best") else "---" for h in headers) + "|"]
    lines += ["| " + " | ".join(cell(row.get(h, "")) for h in headers) + " |" for row in rows]
    return lines


def _html_table(headers: Sequence[str], rows: Sequence[dict[str, str]], right: set[str]) -> str:
    def td(header: str, text: str) -> str:
        cls = ' class="num"' if header in right or header.startswith("best") else ""
        return f"<td{cls}>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = ' class="zoo"' if row.get("front") == "zoo" else (' class="front"' if row.get("front") == "★" else "")
        body.append(f"<tr{cls}>" + "".join(td(h, row.get(h, "")) for h in headers) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _hv(group: GroupSummary) -> str:
    if group.hypervolume is None:
        return "–"
    if len(group.hypervolume_runs) > 1:
        values = list(group.hypervolume_runs.values())
        return f"{group.hypervolume:.4f} ({min(values):.3f}–{max(values):.3f})"
    return f"{group.hypervolume:.4f}"


def _show(name: str, value: float) -> str:
    """A bound of the hypervolume box: one digit more than the tables show, with its unit."""
    info = KNOWN[name]
    finer = f".{int(info.fmt[1:-1]) + 1}{info.fmt[-1]}"  # ".2f" -> ".3f", ".3g" -> ".4g"
    return f"{format(value * info.scale, finer)}{info.unit}"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_CSS = (
    "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}img{max-width:100%;border:1px solid #eee}"
    "table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #e5e5e5;text-align:left}"
    "th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.front td{background:#fffbe6}"
    "tr.zoo td{color:#666;font-style:italic}.note{color:#555;font-size:12.5px}"
)
