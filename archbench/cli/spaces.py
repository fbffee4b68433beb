"""`archbench spaces` and `archbench space show`: the shipped search spaces, their size and MACs
range, and one space's tree of choices with a few sampled architectures.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.tree import Tree

from archbench._validate import MAX_SAMPLES, option_in_range
from archbench.cli import UsageError
from archbench.cli._output import (
    check_writable,
    console,
    print_json,
    quiet_libraries,
    write_file,
)


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
    stats = actions.add_parser(
        "stats",
        help="cost distributions, constraint acceptance and block frequencies over random samples",
        description="Count N unconstrained samples of a space (per-layer cost cache: fast once its layers are known) "
        "and print the distributions of parameters and MACs, the share of samples each constraint accepts, "
        "how often each block type is drawn, and the extremes.",
    )
    stats.add_argument("space", metavar="NAME_OR_FILE")
    stats.add_argument("--samples", type=_positive_int, default=2000, metavar="N", help=f"samples to count, 1 to {MAX_SAMPLES} (default 2000)")
    stats.add_argument("--seed", type=int, default=0, metavar="S", help="first seed; sample i uses seed S+i (default 0)")
    stats.add_argument("--latency", type=_positive_int, default=None, metavar="THREADS",
                       help="also predict CPU latency at batch 1 with THREADS threads (per-layer latency table; new layers are timed)")
    stats.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also draw the distributions to this PNG file")
    stats.add_argument("--json", action="store_true", help="print JSON on stdout and nothing else (every sample's cost included)")
    stats.set_defaults(run=run_stats)
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


# ---- archbench space stats -------------------------------------------------------------------
def run_stats(args: argparse.Namespace) -> int:
    option_in_range(args.samples, "--samples", 1, MAX_SAMPLES, _SAMPLES_WHY)
    if args.plot is not None:
        check_writable(args.plot, "--plot")
    quiet_libraries()
    from archbench import space as spaces_lib
    from archbench.space._stats import space_stats

    space = spaces_lib.load(args.space)
    if args.json:
        stats = space_stats(space, args.samples, seed=args.seed, latency_threads=args.latency)
    else:
        from rich.progress import Progress

        with Progress(console=console(), transient=True) as progress:
            task = progress.add_task(f"counting {args.samples} samples of {space.name}", total=args.samples)
            stats = space_stats(space, args.samples, seed=args.seed, latency_threads=args.latency,
                                progress=lambda n: progress.update(task, completed=n))
    if args.plot is not None:
        from archbench.space._stats_plot import stats_png

        write_file(args.plot, stats_png(stats), "--plot")
    if args.json:
        print_json(stats.to_dict())
        return 0
    _print_stats(stats, space)
    if args.plot is not None:
        console().print(f"Plot: {args.plot}")
    return 0


def _print_stats(stats: Any, space: Any) -> None:
    from archbench.space._stats import histogram

    out = console()
    runnable = stats.runnable
    out.print(
        f"[bold]{space.name}[/bold]: {len(stats.samples)} unconstrained samples (seeds {stats.seed}–{stats.seed + len(stats.samples) - 1}) "
        f"at {space.target.img_size} px in {stats.seconds:.1f} s ({len(stats.samples) / max(stats.seconds, 1e-9):,.0f} samples/s, "
        f"{stats.layers_measured} layers measured, the rest from the cache)"
    )
    for metric, title in (("params", "parameters"), ("macs", "MACs"), ("latency_pred_ms", "predicted CPU latency (ms, batch 1)")):
        values = [float(getattr(s, metric)) for s in runnable if getattr(s, metric) is not None]
        if not values:
            continue
        table = Table(title=f"{title} ({len(values)} samples that run; log-spaced bins)")
        table.add_column("from", justify="right", no_wrap=True)
        table.add_column("to", justify="right", no_wrap=True)
        table.add_column("count", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        bins = histogram(values)
        top = max(count for _, _, count in bins) or 1
        for low, high, count in bins:
            table.add_row(_short(low), _short(high), str(count), "█" * round(40 * count / top))
        q = stats.quantiles(metric)
        out.print(table)
        out.print(f"  median {_short(q['p50'])}, 10–90%: {_short(q['p10'])}–{_short(q['p90'])}")
    accept = Table(title="share of samples accepted")
    accept.add_column("check")
    accept.add_column("bound", justify="right")
    accept.add_column("accepted", justify="right")
    shares = stats.acceptance()
    accept.add_row("builds and runs", "", f"{shares['runs']:.1%}")
    for name, value in stats.constraints.items():
        if name in shares:
            accept.add_row(name, _short(value), f"{shares[name]:.1%}")
        else:
            accept.add_row(name, f"{value:g}", "not checked (predict it with --latency 1)")
    accept.add_row("all constraints", "", f"{shares['all']:.1%}")
    out.print(accept)
    blocks = Table(title="block types")
    blocks.add_column("block")
    blocks.add_column("share of blocks", justify="right")
    blocks.add_column("samples using it", justify="right")
    for kind, share in stats.block_frequencies().items():
        blocks.add_row(kind, f"{share['blocks']:.1%}", f"{share['samples']:.1%}")
    out.print(blocks)
    extremes = stats.extremes()
    if extremes:
        table = Table(title="extremes")
        table.add_column("")
        table.add_column("seed", justify="right")
        table.add_column("stem | blocks×depth per stage", overflow="fold", ratio=1)
        table.add_column("params (M)", justify="right")
        table.add_column("GMACs", justify="right")
        for label, s in extremes.items():
            table.add_row(label.replace("_", " "), str(s.seed), s.summary, f"{(s.params or 0) / 1e6:.2f}", f"{(s.macs or 0) / 1e9:.3f}")
        out.print(table)
    errors = stats.errors()
    if errors:
        reason, count = errors.most_common(1)[0]
        out.print(f"{sum(errors.values())} samples do not run at {space.target.img_size} px; most often ({count}×): {reason}")
    out.print(f"Counts: {stats.method}, summed per layer (archbench.measure.arch_cost).")
