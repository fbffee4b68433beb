"""`archbench reproduce`: published vs measured params and MACs for zoo presets; exit 1 if any row
is out of tolerance, so it can gate CI.
"""
from __future__ import annotations

import argparse

from rich.table import Table

from archbench.cli import JobFailed, UsageError
from archbench.cli._output import console, fmt_pct, print_json, quiet_libraries


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="published vs measured params/MACs of zoo presets",
        description="Build each preset at its own resolution, count params and MACs, and compare with "
        "the published figures. Tolerance: 2%% for figures with >= 3 significant digits; otherwise half a "
        "unit of the last digit plus 1%% (params) or 1.5%% (MACs). Exit status 1 if any row is out of tolerance "
        "(a documented deviation — a figure the released code itself cannot reach, with the reason — does not fail).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="presets (default: all)")
    parser.add_argument("--format", choices=("table", "md", "json"), default="table")
    parser.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    parser.add_argument("--latency", action="store_true", help="also measure CPU latency (batch 1) here")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for latency")
    parser.set_defaults(run=run)


_SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"


def _cell(published: str | None, measured: float, delta: float | None, ok: bool | None) -> tuple[str, str, str]:
    mark = "" if ok is None else (" ✓" if ok else " ✗")
    return published or "n/f", f"{measured:.2f}", fmt_pct(delta) + mark


def run(args: argparse.Namespace) -> int:
    from archbench import zoo
    from archbench.measure.reproduce import reproduce

    quiet_libraries()
    known = zoo.names()
    for name in args.names:
        if name not in known:
            raise UsageError(f"unknown zoo preset '{name}' ({zoo.suggest(name)})")
    rows = reproduce(args.names or None, latency=args.latency, threads=args.threads)
    failed = [r.name for r in rows if not r.ok]
    if args.format == "json":
        print_json([r.to_dict() for r in rows])
    elif args.format == "md":
        reasons = list(dict.fromkeys(r.deviation for r in rows if r.status == "documented deviation"))
        marks = {reason: _SUPERSCRIPTS[i % len(_SUPERSCRIPTS)] for i, reason in enumerate(reasons)}
        header = "| model | res | params (M) pub. | meas. | Δ | GMACs pub. | meas. | Δ | status |"
        if args.latency:
            header += " latency (ms) |"
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for r in rows:
            status = {"ok": "ok", "out of tolerance": "**out of tolerance**"}.get(r.status) or f"{r.status}{marks[r.deviation]}"
            cells = [r.name, str(r.img_size), *_cell(r.published_params_m, r.measured_params_m, r.params_delta_pct, r.params_ok),
                     *_cell(r.published_gmacs, r.measured_gmacs, r.gmacs_delta_pct, r.gmacs_ok), status]
            if args.latency:
                cells.append(f"{r.latency_ms_median:.1f}" if r.latency_ms_median is not None else "–")
            print("| " + " | ".join(cells) + " |")
        for reason in reasons:
            names = ", ".join(r.name for r in rows if r.deviation == reason)
            print(f"\n{marks[reason]} {names}: {reason}.")
    else:
        table = Table(title="published vs measured (params in M, MACs in G)")
        for col in ("model", "res", "params pub.", "meas.", "Δ", "GMACs pub.", "meas.", "Δ", "status"):
            table.add_column(col)
        if args.latency:
            table.add_column("latency ms")
        for r in rows:
            cells = [r.name, str(r.img_size), *_cell(r.published_params_m, r.measured_params_m, r.params_delta_pct, r.params_ok),
                     *_cell(r.published_gmacs, r.measured_gmacs, r.gmacs_delta_pct, r.gmacs_ok),
                     {"ok": "[green]ok[/]", "documented deviation": "[yellow]documented deviation[/]"}.get(r.status, "[red]out of tolerance[/]")]
            if args.latency:
                cells.append(f"{r.latency_ms_median:.1f}" if r.latency_ms_median is not None else "–")
            table.add_row(*cells)
        out = console()
        out.print(table)
        for r in rows:
            if r.status == "documented deviation":
                out.print(f"[yellow]{r.name}[/]: {r.deviation}")
    if failed:
        raise JobFailed(f"{len(failed)} preset(s) out of tolerance: {', '.join(failed)}")
    return 0
