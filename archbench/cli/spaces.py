"""`archbench spaces` and `archbench space show`: the shipped search spaces, their size and MACs
range, and one space's tree of choices with a few sampled architectures.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

from rich.table import Table
from rich.tree import Tree

from archbench._validate import MAX_SAMPLES, option_in_range
from archbench.cli import UsageError
from archbench.cli._output import console, print_json, quiet_libraries


def register(subparsers: argparse._SubParsersAction) -> None:
    spaces = subparsers.add_parser(
        "spaces",
        help="list the shipped search spaces",
        description="List the shipped search spaces: layout, size (log10 of the number of architectures), "
        "MACs and parameter ranges (estimated from samples, cached).",
    )
    spaces.add_argument("--json", action="store_true", help="print JSON on stdout and nothing else")
    spaces.add_argument("--no-ranges", action="store_true", help="skip the MACs/params ranges (no model is built)")
    spaces.add_argument("--range-samples", type=_positive_int, default=None, metavar="N", help=f"samples per range estimate, 1 to {MAX_SAMPLES} (default 24)")
    spaces.set_defaults(run=run_spaces)

    space = subparsers.add_parser("space", help="inspect one search space", description="Inspect one search space.")
    actions = space.add_subparsers(dest="space_command", metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="the tree of choices and sampled architectures",
        description="Print a space's tree of choices and K sampled architectures with parameters and MACs. "
        "NAME_OR_FILE is a shipped space, a space file, a zoo preset or an architecture file.",
    )
    show.add_argument("space", metavar="NAME_OR_FILE")
    show.add_argument("--samples", type=_non_negative_int, default=3, metavar="K", help=f"architectures to sample, 0 to {MAX_SAMPLES} (default 3)")
    show.add_argument("--seed", type=int, default=0, metavar="S", help="first seed; sample i uses seed S+i (default 0)")
    show.add_argument("--unconstrained", action="store_true", help="ignore the space's constraints when sampling")
    show.add_argument("--json", action="store_true", help="print JSON on stdout and nothing else")
    show.set_defaults(run=run_show)
    space.set_defaults(run=_space_usage)


def _space_usage(args: argparse.Namespace) -> int:
    raise UsageError("space: say what to do, e.g. `archbench space show hybrid_vit` (see `archbench space --help`)")


_SAMPLES_WHY = "each sample is built and counted"


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


# ---- archbench spaces ------------------------------------------------------------------------
def run_spaces(args: argparse.Namespace) -> int:
    if args.range_samples is not None:
        option_in_range(args.range_samples, "--range-samples", 1, MAX_SAMPLES, _SAMPLES_WHY)
    quiet_libraries()
    from archbench import space as spaces_lib

    names = spaces_lib.names()
    if not names:
        raise UsageError(f"no shipped spaces found in {spaces_lib.shipped_dir()}")
    rows = []
    for name in names:
        space = spaces_lib.load(name)
        row: dict[str, Any] = {
            "name": space.name,
            "file": space.file,
            "layout": space.layout,
            "size_log10": None if math.isinf(space.size_log10) else round(space.size_log10, 2),
            "target": {"img_size": space.target.img_size, "num_classes": space.target.num_classes},
            "constraints": {k: v for k, v in space.constraints.to_dict().items() if v is not None},
            "description": space.description,
            "hash": space.hash,
        }
        if not args.no_ranges:
            spread = space.ranges(args.range_samples) if args.range_samples else space.ranges()
            row.update(
                macs_min=spread.macs[0], macs_max=spread.macs[1], params_min=spread.params[0], params_max=spread.params[1],
                range_samples=spread.samples, range_method=spread.method,
            )
        rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    table = Table(title=f"archbench search spaces ({len(rows)})")
    for col in ("name", "layout", "size (log10)", "MACs", "params", "budget"):
        table.add_column(col, overflow="fold")
    for r in rows:
        size = "∞" if r["size_log10"] is None else f"{r['size_log10']:.1f}"
        macs = f"{_short(r['macs_min'])}–{_short(r['macs_max'])}" if "macs_min" in r else "–"
        params = f"{_short(r['params_min'])}–{_short(r['params_max'])}" if "params_min" in r else "–"
        budget = ", ".join(f"{k} {v:g}" if k == "max_latency_ms" else f"{k} {_short(v)}" for k, v in r["constraints"].items())
        table.add_row(r["name"], r["layout"], size, macs, params, budget or "none")
    out = console()
    out.print(table)
    if not args.no_ranges and rows:
        out.print(f"Ranges: min/max over {rows[0]['range_samples']} unconstrained samples per space ({rows[0]['range_method']}).")
    return 0


def _short(value: float) -> str:
    from archbench.quantity import format_quantity

    return format_quantity(value).replace(" ", "")


# ---- archbench space show --------------------------------------------------------------------
def run_show(args: argparse.Namespace) -> int:
    option_in_range(args.samples, "--samples", 0, MAX_SAMPLES, _SAMPLES_WHY)
    quiet_libraries()
    from archbench import space as spaces_lib

    space = spaces_lib.load(args.space)
    samples = []
    for i in range(args.samples):
        seed = args.seed + i
        arch = space.sample(seed, constrained=not args.unconstrained)
        found = space.estimate(arch)
        samples.append(
            {
                "seed": seed,
                "name": arch.name,
                "hash": arch.hash,
                "summary": arch.summary(),
                "depths": [s.depth for s in arch.stages],
                "dims": [s.dim for s in arch.stages],
                "params": found.params,
                "macs": found.macs,
                "arch": arch.to_dict(),
            }
        )
    header = {
        "name": space.name,
        "file": space.file,
        "layout": space.layout,
        "description": space.description,
        "target": {"img_size": space.target.img_size, "num_classes": space.target.num_classes, "in_chans": space.target.in_chans},
        "constraints": {k: v for k, v in space.constraints.to_dict().items() if v is not None},
        "size_log10": None if math.isinf(space.size_log10) else space.size_log10,
        "hash": space.hash,
    }
    if args.json:
        print_json({**header, "outline": space.outline(), "samples": samples, "count_method": spaces_lib.ESTIMATE_METHOD})
        return 0
    out = console()
    target = space.target
    out.print(
        f"[bold]{space.name}[/bold]  {space.file}  ({space.layout}, {target.img_size} px, {target.num_classes} classes)\n"
        f"size: {space.size_text} architectures (log10 {space.size_log10:.1f}); constraints: {space.constraints.describe()}"
    )
    if space.description:
        out.print(space.description)
    out.print(_tree(space.outline()))
    if samples:
        table = Table(title=f"{len(samples)} sampled architectures at {target.img_size} px")
        table.add_column("seed", no_wrap=True, justify="right")
        table.add_column("stem | blocks×depth per stage", overflow="fold", ratio=1)
        table.add_column("widths", no_wrap=True)
        table.add_column("params (M)", no_wrap=True, justify="right")
        table.add_column("GMACs", no_wrap=True, justify="right")
        table.add_column("hash", no_wrap=True)
        for s in samples:
            table.add_row(
                str(s["seed"]), s["summary"], "/".join(map(str, s["dims"])), f"{s['params'] / 1e6:.2f}", f"{s['macs'] / 1e9:.3f}", s["hash"],
            )
        out.print(table)
        out.print(f"Counts: {spaces_lib.ESTIMATE_METHOD}.")
    return 0


def _tree(node: dict[str, Any], tree: Tree | None = None) -> Tree:
    branch = Tree(node["label"]) if tree is None else tree.add(node["label"])
    for child in node["children"]:
        _tree(child, branch)
    return branch
