"""`archbench fidelity`: how well does each cheap signal (params, MACs, zero-cost scores, the search's
proxy accuracy, the sum of training losses) rank this space's architectures against a costlier training?

Flags for the proxy are the search's (the default judges the default search's proxy); ``--reference``
changes the reference fidelity. The study lands in runs/fidelity-<space>-<timestamp>/ and ends with
its table of rank correlations; ``archbench report RUN`` renders it again in any format.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from archbench.cli import UsageError
from archbench.cli._proxy_flags import PROXY_FLAGS, proxy_values

if TYPE_CHECKING:
    from archbench.fidelity.options import FidelityOptions



def register(subparsers: argparse._SubParsersAction) -> None:
    from archbench.fidelity.options import REFERENCE_CHANGES, REFERENCE_KEYS, FidelityOptions
    from archbench.cli._proxy_flags import add_proxy_flags

    d = FidelityOptions()
    p = subparsers.add_parser(
        "fidelity",
        help="rank validity of cheap signals (zero-cost scores, proxy accuracy, params, MACs) on a space",
        description="Draw architectures spread over a space's MACs range, evaluate each with every cheap signal and "
        "at a costlier reference training, and report each signal's Kendall τ and Spearman ρ against the reference "
        "accuracy (bootstrap 95% intervals), its top-25% overlap, whether it beats params and MACs, and the proxy's "
        "seed-to-seed τ (the noise ceiling). Runs on Ray like a search; --resume continues a stopped study.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    S = argparse.SUPPRESS  # flags left out keep FidelityOptions' defaults (and stay "not given" on --resume)
    p.add_argument("--space", default=S, help=f"shipped space name or space file (default {d.space})")
    p.add_argument("--archs", type=int, default=S, help=f"architectures, spread over the space's MACs range (default {d.archs})")
    p.add_argument("--seeds", type=int, default=S, help=f"proxy trainings per architecture (default {d.seeds})")
    p.add_argument("--reference-seeds", type=int, default=S, help=f"reference trainings per architecture (default {d.reference_seeds})")
    changes = ",".join(f"{k}={0 if v is None else v}" for k, v in REFERENCE_CHANGES.items())
    p.add_argument("--reference", default=S, metavar="KEY=VALUE,…",
                   help=f"the reference fidelity as changes to the proxy, keys from {', '.join(REFERENCE_KEYS)} (default {changes})")
    add_proxy_flags(p, d.proxy)
    p.add_argument("--latency", action="store_true", default=S, help="also time every architecture (batch 1, before training starts)")
    p.add_argument("--pool", type=int, default=S, help=f"architectures drawn per one kept, for the MACs strata (default {d.pool})")
    p.add_argument("--seed", type=int, default=S, help=f"seed of the architecture draw (default {d.seed})")
    p.add_argument("--cpus-per-trial", type=int, default=S, help=f"CPU threads per evaluation (default {d.cpus_per_trial})")
    p.add_argument("--concurrency", type=int, default=S, help="evaluations at once, >= 1 (default: CPUs / cpus-per-trial)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=S, help="training device (default auto)")
    p.add_argument("--ray-address", default=S, help="join an existing Ray cluster instead of a local one")
    p.add_argument("--run-dir", default=S, help="run folder (default runs/fidelity-<space>-<timestamp>)")
    p.add_argument("--resume", action="store_true", default=S, help="continue the study in --run-dir")
    p.add_argument("--reference-from", default=S, metavar="RUN",
                   help="take the architectures and the reference trainings of the finished study RUN and train only the proxy "
                   "(compare proxies against one reference)")
    p.add_argument("--no-live", action="store_true", help="no live view: one line per finished evaluation")
    p.set_defaults(run=run)


def options_from(args: argparse.Namespace) -> tuple[FidelityOptions, set[str]]:
    """The options the flags give (the rest keep their defaults) and the names of those given."""
    from archbench.fidelity.options import FidelityOptions

    given = {k: v for k, v in vars(args).items() if k not in ("run", "debug", "command", "no_live")}
    if given.get("concurrency", 1) < 1:  # FidelityOptions' 0 ("as the CPUs allow") is the flag left out
        raise UsageError(f"--concurrency must be >= 1, got {given['concurrency']} (leave it out to run CPUs / --cpus-per-trial evaluations at once)")
    base = FidelityOptions()
    proxy = replace(base.proxy, **proxy_values(given))
    top = {k: v for k, v in given.items() if k not in PROXY_FLAGS and k != "reference"}
    options = FidelityOptions(**{**top, "proxy": proxy, "reference": proxy}).with_reference(given.get("reference", ""))
    return options, set(given)


def run(args: argparse.Namespace) -> int:
    from archbench.cli._output import console, quiet_libraries
    from archbench.fidelity.options import FROM_REFERENCE_STUDY
    from archbench.store.run import option_flag

    quiet_libraries()
    options, given = options_from(args)  # before torch and Ray are imported: a bad flag is refused at once
    if options.resume and given & {*PROXY_FLAGS, *FROM_REFERENCE_STUDY, "seeds", "reference_from"}:
        raise UsageError("--resume continues a study as it was planned: only --concurrency, --cpus-per-trial and --ray-address may change")
    if options.reference_from and given & set(FROM_REFERENCE_STUDY):
        taken = ", ".join(option_flag(name) for name in FROM_REFERENCE_STUDY if name in given)
        raise UsageError(f"--reference-from takes the space, architectures and reference training of {options.reference_from}: leave out {taken}")

    from archbench.fidelity.runner import run_fidelity
    from archbench.report.fidelity import print_fidelity

    out = console()
    outcome = run_fidelity(
        options,
        command=["archbench", *sys.argv[1:]] if sys.argv[0].endswith("archbench") else ["python", *sys.argv],
        overrides=given,
        quiet=not args.debug,
        live=not args.no_live,
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items())) or "no evaluations"
    out.print(f"\n[bold]{outcome.run_dir}[/]: {counts} of {outcome.planned} in {outcome.elapsed_s:.0f}s", soft_wrap=True)
    if outcome.interrupted or outcome.analysis is None:
        out.print(f"interrupted: continue with  archbench fidelity --resume --run-dir {outcome.run_dir}", soft_wrap=True)
        return 130
    print_fidelity(outcome.analysis, out)
    from archbench.store.run import RunFolder

    folder = RunFolder(outcome.run_dir)
    out.print(f"written: {folder.trials_dir}/ (Parquet, one part an evaluation), {folder.plan_path.name}, "
              f"{folder.analysis_path.name}, {folder.scatter_path.name}, {folder.manifest_path.name}", soft_wrap=True)
    return 0
