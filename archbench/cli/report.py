"""`archbench report`: leaderboard, Pareto fronts, hypervolume, plots and exports across runs.

Reads run folders (default: every run under runs/), skipping what cannot be read with one line
each on stderr; renders with archbench.report. Exit 0 if at least one run was read, else 2.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from archbench.cli import UsageError
from archbench.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from archbench.report.fidelity import FidelityStudy

DEFAULT_TOP = 25  # terminal rows; the file formats carry every trial unless --top says otherwise


def register(subparsers: argparse._SubParsersAction) -> None:
    from archbench.report.export import FORMATS
    from archbench.report.summary import BY

    p = subparsers.add_parser(
        "report",
        help="leaderboard, Pareto fronts, hypervolume and plots of one or more runs",
        description="Read run folders as one table: Pareto ranks (non-dominated sorting, crowding within a "
        "front) over the runs' objectives, each run's hypervolume in one shared normalised box, a leaderboard, "
        "optional zoo reference models measured on this machine, and a plot.",
    )
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders, or folders of runs (default: every run under runs/)")
    p.add_argument("--objectives", help="NAME:max|min,… from val_acc, macs, params, latency_ms (default: the runs' own)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (terminal), md, csv, json (rows only) or html (one self-contained file)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the rendering to FILE instead of stdout")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the Pareto fronts to FILE.png")
    p.add_argument("--top", type=int, help=f"rows of the leaderboard (default {DEFAULT_TOP} for table, all for other formats)")
    p.add_argument("--with-zoo", nargs="?", const=True, default=False, metavar="NAME,…",
                   help="add zoo presets measured here as reference rows and plot anchors (default set for the runs' layout, "
                   "or the presets named); cached in ~/.cache/archbench (ARCHBENCH_CACHE_DIR)")
    p.add_argument("--by", choices=BY, default="run", help="summarise, colour and compare hypervolume per run, sampler or space")
    p.add_argument("--hv-bounds", metavar="NAME=IDEAL:REF,…",
                   help="fix the hypervolume box, e.g. val_acc=1:0,macs=0:6G (default: from the trials shown)")
    p.add_argument("--summary", metavar="FILE.json", help="also write the per-run/sampler/space summary (hypervolume, box, counts) as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from archbench.cli._output import check_writable, quiet_libraries, write_file
    from archbench.report import export
    from archbench.report.summary import make_report

    quiet_libraries()
    if args.top is not None and args.top < 1:
        raise UsageError("--top must be >= 1")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UsageError(f"--plot: {args.plot}: expected a .png file name")
    for option, value in (("--output", args.output), ("--plot", args.plot), ("--summary", args.summary)):
        if value:  # before the report is made: a run of --with-zoo measures models first
            check_writable(Path(value), option)
    zoo = args.with_zoo
    if isinstance(zoo, str) and Path(zoo).is_dir():
        # `--with-zoo runs/x`: argparse gave the run folder to the optional value; it is a run.
        args.run_dirs = [zoo, *args.run_dirs]
        zoo = True
    if isinstance(zoo, str):
        zoo = [name.strip() for name in zoo.split(",") if name.strip()]
        if not zoo:
            raise UsageError("--with-zoo: give preset names, e.g. --with-zoo swin_t,hornet_t_7x7 (or no value for the default set)")

    def warn(line: str) -> None:
        print(f"archbench: {line}", file=sys.stderr, flush=True)

    skipped: list[str] = []
    searches, studies = _split_kinds(args.run_dirs or None, skipped.append)
    if not searches and not studies:  # nothing to report: why is the one line
        raise UsageError("no run could be read: " + "; ".join(line.removeprefix("warning: ").removesuffix(" (skipped)") for line in skipped) if skipped else "no run folders found")
    for line in skipped:
        warn(line)
    if studies and not searches:
        return _report_studies(studies, args, warn)
    if studies and args.format in ("csv", "json"):  # rows of one kind: the searches'
        for study in studies:
            warn(f"warning: {study.path}: a fidelity study: render it with archbench report {study.path} --format {args.format}")
        studies = []
    if not searches:
        raise UsageError("no run could be read (see the lines above)")
    try:
        report = make_report(searches, objectives=args.objectives, by=args.by, hv_bounds=args.hv_bounds, zoo=zoo, progress=warn)
    except KeyError as err:  # a zoo lookup: its message is the one line to show
        raise UsageError(str(err).strip("'\"")) from None
    for line in report.warnings:
        warn(f"warning: {line}")
    if not report.runs:
        raise UsageError("no run could be read (see the lines above)")

    png = None
    if args.plot or args.format == "html":
        from archbench.report.plot import png_bytes

        png = png_bytes(report, dpi=130)
    if args.plot:
        write_file(Path(args.plot), png, "--plot")
        warn(f"wrote {args.plot}")

    from archbench.report import fidelity
    from archbench.report.screening import pool_lines

    verdicts = fidelity.verdicts_for_spaces([r.space for r in report.runs if r.space], [r.path for r in report.runs])
    screened = pool_lines(report.runs)
    top = args.top if args.top is not None else (DEFAULT_TOP if args.format == "table" else None)
    if args.format == "table":
        with _console(args.output) as console:
            export.print_report(report, console, top=top)
            for line in [*fidelity.verdict_lines(verdicts), *screened]:
                console.print(line, soft_wrap=True, highlight=False)
            if studies:
                fidelity.print_studies(studies, console)
    else:
        text = {
            "md": lambda: export.to_markdown(report, top=top, plot_path=args.plot) + _md_verdicts([*fidelity.verdict_lines(verdicts), *screened])
            + (fidelity.to_markdown(studies) if studies else ""),
            "csv": lambda: export.to_csv(report, top=top),
            "json": lambda: export.to_json(report, top=top),
            "html": lambda: export.to_html(report, top=top, png=png, notes=fidelity.verdict_lines(verdicts)),
        }[args.format]()
        _emit(text, args.output)
    if args.output:
        warn(f"wrote {args.output}")
    if args.summary:
        write_file(Path(args.summary), export.summary_json(report).encode(), "--summary")
        warn(f"wrote {args.summary}")
    return 0


def _split_kinds(paths: list[str] | None, warn: Callable[[str], None]) -> tuple[list[Path], list[FidelityStudy]]:
    """The search runs and the fidelity studies among the folders named (default: runs/); what is
    neither is warned about."""
    from archbench.report.fidelity import FIDELITY_KIND, load_study, run_kind
    from archbench.report.runs import discover

    folders, problems = discover(paths)
    for line in problems:  # what is not a run; make_report warns about the runs it cannot read
        warn(f"warning: {line}")
    searches, studies = [], []
    for folder in folders:
        if run_kind(folder) != FIDELITY_KIND:
            searches.append(folder)
            continue
        try:
            studies.append(load_study(folder))
        except UserError as err:
            warn(f"warning: {err} (skipped)")
    return searches, studies


def _report_studies(studies: list[FidelityStudy], args: argparse.Namespace, warn: Callable[[str], None]) -> int:
    """A report of fidelity studies only, in the chosen format (--plot copies each study's scatter)."""
    from archbench.cli._output import write_file
    from archbench.report import fidelity

    if args.plot:
        for study in studies:
            target = Path(args.plot) if len(studies) == 1 else Path(args.plot).with_name(f"{Path(args.plot).stem}-{study.label}.png")
            write_file(target, fidelity._scatter_png(study), "--plot")
            warn(f"wrote {target}")
    if args.format == "table":
        with _console(args.output) as console:
            fidelity.print_studies(studies, console)
    else:
        plots = {s.label: args.plot for s in studies} if args.plot and len(studies) == 1 else None
        text = {
            "md": lambda: fidelity.to_markdown(studies, plot_paths=plots),
            "csv": lambda: fidelity.to_csv(studies),
            "json": lambda: fidelity.to_json(studies),
            "html": lambda: fidelity.to_html(studies),
        }[args.format]()
        _emit(text, args.output)
    if args.output:
        warn(f"wrote {args.output}")
    return 0


@contextlib.contextmanager
def _console(output: str | None) -> Iterator[Console]:
    """The console a table is printed on: stdout, or with ``--output`` a buffer that is written to
    the file once the whole report rendered (a failure part-way leaves the file as it was)."""
    from rich.console import Console

    if not output:
        wide = not sys.stdout.isatty()  # a pipe: no terminal width to respect
        yield Console(highlight=False, width=200 if wide else None, color_system="auto")
        return
    buffer = io.StringIO()
    yield Console(file=buffer, highlight=False, width=200, color_system=None)
    _emit(buffer.getvalue(), output)


def _md_verdicts(lines: list[str]) -> str:
    return ("\n## Fidelity of the spaces\n\n" + "\n".join(f"- {line}" for line in lines) + "\n") if lines else ""


def _emit(text: str, output: str | None) -> None:
    from archbench.cli._output import write_file

    if output:
        write_file(Path(output), text.encode(), "--output")
    else:
        sys.stdout.write(text)
