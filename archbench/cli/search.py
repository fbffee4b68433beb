"""`archbench search` / `python bench.py search`: multi-objective architecture search.

Flags map one to one onto SearchOptions' flat form (training flags onto its TrainConfig); the run lands
in runs/<space>-<timestamp>/ (Parquet parts, manifest, the Optuna study in SQLite, Ray log) and ends
with the run's leaderboard.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from archbench.cli import UsageError

if TYPE_CHECKING:
    from archbench.search.options import SearchOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    from archbench.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
    from archbench.search.options import SAMPLERS, SCHEDULERS, SearchOptions
    from archbench._validate import MAX_BATCH
    from archbench.cli._proxy_flags import add_proxy_flags

    d = SearchOptions()
    t = d.train
    p = subparsers.add_parser(
        "search",
        help="search a space: Optuna samples, Ray Tune trains proxies, results land as Parquet",
        description="Multi-objective architecture search. Each trial samples an architecture from the space, "
        "counts its params and MACs at the space's resolution (rejecting constraint violations before any "
        "training), times it in isolation when latency matters, trains a scaled-down proxy on the dataset and "
        "records one Parquet part, with zero-cost scores of the proxy at initialisation. Defaults run in minutes on a 2-core CPU with the bundled digits dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    S = argparse.SUPPRESS  # flags left out keep SearchOptions' defaults (and stay "not given" on --resume)
    p.add_argument("--space", default=S, help=f"shipped space name, space file, zoo preset or arch file (default {d.space})")
    p.add_argument("--trials", type=int, default=S, help=f"trials to complete (default {d.trials})")
    p.add_argument("--sampler", choices=SAMPLERS, default=S, help=f"Optuna sampler (default {d.sampler})")
    p.add_argument(
        "--objectives",
        default=S,
        help=f"comma list of NAME:max|min from {', '.join(OBJECTIVES)} (default {DEFAULT_OBJECTIVES}); "
        "without val_acc nothing is trained (zero-cost scores are taken at initialisation)",
    )
    add_proxy_flags(p, t)
    p.add_argument("--mixup", type=float, default=S, help="timm Mixup alpha, 0 = off (default 0)")
    p.add_argument("--cutmix", type=float, default=S, help="timm CutMix alpha, 0 = off (default 0)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=S, help="fifo, or asha to prune on val_acc (default fifo)")
    p.add_argument("--cpus-per-trial", type=int, default=S, help=f"CPU threads per trial (default {d.cpus_per_trial})")
    p.add_argument("--gpus-per-trial", type=float, default=S, help="GPUs per trial, fractional packs several (default 0; 0.25 with --device cuda)")
    p.add_argument("--concurrency", type=int, default=S, help="trials at once, >= 1 (default: CPUs / cpus-per-trial)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=S, help="training/latency device (default auto)")
    p.add_argument("--ray-address", default=S, help="join an existing Ray cluster (ray start --head …) instead of a local one")
    p.add_argument("--run-dir", default=S, help="run folder (default runs/<space>-<timestamp>)")
    p.add_argument("--resume", action="store_true", default=S, help="continue the run in --run-dir up to --trials")
    p.add_argument("--seed", type=int, default=S, help=f"seed of sampler, splits and training (default {t.seed})")
    p.add_argument("--max-macs", default=S, help="override the space's max_macs, e.g. 2G")
    p.add_argument("--max-params", default=S, help="override the space's max_params, e.g. 20M")
    p.add_argument("--time-budget", type=float, default=S, dest="time_budget_min", help="minutes after which no new trial starts")
    p.add_argument("--latency-batch-size", type=int, default=S, help=f"batch size of latency measurements, 1 to {MAX_BATCH} (default 1)")
    p.add_argument("--screen", type=int, default=S, metavar="N", help="draw N candidates cheaply (exact cost, a zero-cost score for val_acc) and train the --trials best by non-dominated sorting (default 0: off)")
    p.add_argument("--screen-signal", default=S, help="zero-cost score standing in for val_acc while screening: synflow (default), nwot, grad_norm or snip")
    p.add_argument("--top", type=int, default=10, help="leaderboard rows printed at the end")
    p.add_argument("--no-live", action="store_true", help="no live view: one line per finished trial")
    p.set_defaults(run=run)


def _options_from(args: argparse.Namespace) -> tuple[SearchOptions, set[str]]:
    """The options the flags give (the rest keep their defaults) and the flat names of those given."""
    from archbench.cli._proxy_flags import proxy_values
    from archbench.quantity import parse_quantity
    from archbench.search.options import SearchOptions

    given = {k: v for k, v in vars(args).items() if k in SearchOptions.flat_names()}
    if given.get("concurrency", 1) < 1:  # SearchOptions' 0 ("as the CPUs allow") is the flag left out
        raise UsageError(f"--concurrency must be >= 1, got {given['concurrency']} (leave it out to run CPUs / --cpus-per-trial trials at once)")
    given.update(proxy_values(given))  # --train-images 0: the whole training split
    for key in ("max_macs", "max_params"):
        if key in given:
            given[key] = parse_quantity(given[key], f"--{key.replace('_', '-')}", key)
    return SearchOptions.from_dict(given), set(given)


def run(args: argparse.Namespace) -> int:
    from archbench.cli._output import console, quiet_libraries
    from archbench.search.prepare import check_run_dir

    quiet_libraries()
    # Options and the run folder are checked before torch and Ray are imported (seconds and a
    # gigabyte): a mistyped flag is refused at once.
    try:
        options, given = _options_from(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_run_dir(options, given)

    from archbench.report.leaderboard import print_leaderboard
    from archbench.search.runner import run_search

    out = console()
    outcome = run_search(
        options,
        command=["archbench", *sys.argv[1:]] if sys.argv[0].endswith("archbench") else ["python", *sys.argv],
        overrides=given,
        quiet=not args.debug,
        live=not args.no_live,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items())) or "no trials"
    out.print(f"\n[bold]{outcome.run_dir}[/]: {counts} in {outcome.elapsed_s:.0f}s", soft_wrap=True)
    print_leaderboard([outcome.run_dir], top=args.top, console=out)
    # soft_wrap: paths and commands stay on one line, whole, for copying (rich wraps at 80 off a terminal)
    out.print(f"written: {_written(outcome.run_dir)}", soft_wrap=True)
    if outcome.interrupted:
        out.print(f"interrupted: continue with  archbench search --resume --run-dir {outcome.run_dir}", soft_wrap=True)
        return 130
    if outcome.stopped_by_budget:
        out.print("time budget reached: no new trials were started after it", soft_wrap=True)
    return 0


def _written(run_dir: Path) -> str:
    """What a search leaves in its folder, named as the run folder names them."""
    from archbench.store.run import RunFolder

    folder = RunFolder(run_dir)
    names = (p.name for p in (folder.manifest_path, folder.space_copy, folder.study_path, folder.ray_log))
    return f"{folder.trials_dir}/ (Parquet, one part a trial), {', '.join(names)}"
