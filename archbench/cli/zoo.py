"""`archbench zoo`: the published architectures shipped as presets, with their published figures.
"""
from __future__ import annotations

import argparse

from rich.table import Table

from archbench.cli._output import console, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("zoo", help="list the zoo presets", description="List the zoo presets and their published figures.")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout and nothing else")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archbench import zoo

    rows = []
    for name in zoo.names():
        entry = zoo.preset(name)
        arch = zoo.get(name)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "layout": arch.layout,
                "img_size": arch.input.img_size,
                "summary": arch.summary(),
                "published_params_m": entry.published.params_m,
                "published_gmacs": entry.published.gmacs,
                "top1": entry.published.top1,
                "timm_name": entry.timm_name,
                "source": entry.published.source,
                "arch_hash": arch.hash,
            }
        )
    if args.json:
        print_json(rows)
        return 0
    table = Table(title=f"archbench zoo ({len(rows)} presets)")
    for col in ("name", "family", "res", "architecture", "params (M)", "GMACs", "top-1", "timm"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], r["family"], str(r["img_size"]), r["summary"], r["published_params_m"] or "n/f",
            r["published_gmacs"] or "n/f", r["top1"] or "–", r["timm_name"] or "–",
        )
    console().print(table)
    return 0
