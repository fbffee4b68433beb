"""`archbench compare A B`: layer-by-layer linear CKA of two architectures (zoo names, architecture files
or RUN:TRIAL trials of a run) on the proxy dataset, at initialisation or after proxy training.

Prints one summary line; ``--plot`` writes the heatmap, ``--output`` the matrix (.json or .parquet).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from archbench.cli import UsageError

OUTPUT_SUFFIXES = (".json", ".parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    from archbench.cli._proxy_flags import add_proxy_flags
    from archbench.similarity import DEFAULT_BATCH
    from archbench.train.config import TrainConfig

    p = subparsers.add_parser(
        "compare",
        help="layer-by-layer linear CKA between two architectures (heatmap, matrix, summary)",
        description="Representation similarity of every block of A against every block of B (Raghu et al., "
        "NeurIPS 2021): minibatch linear CKA with unbiased HSIC (Nguyen et al., ICLR 2021) over the val split of "
        "the proxy dataset, on the proxies a search trains (the proxy flags below), at initialisation or --trained. "
        "A and B are zoo names, architecture files, or RUN:TRIAL (a run folder and a trial id; its proxy settings "
        "are used unless proxy flags are given).",
    )
    S = argparse.SUPPRESS
    p.add_argument("a", metavar="A", help="zoo name, architecture file (.yaml/.json) or RUN:TRIAL")
    p.add_argument("b", metavar="B", help="the same, for the other side")
    p.add_argument("--trained", action="store_true", help="train both proxies first (as a search trial would)")
    p.add_argument("--plot", type=Path, help="write the heatmap PNG here")
    p.add_argument("--output", type=Path, help="write the matrix here (.json or .parquet)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout, nothing else")
    p.add_argument("--cka-batch", type=int, default=DEFAULT_BATCH, help=f"examples a CKA minibatch, >= 4 (default {DEFAULT_BATCH})")
    p.add_argument("--images", type=int, default=None, help="val images used, at most (default: all)")
    add_proxy_flags(p, TrainConfig())
    p.add_argument("--seed", type=int, default=S, help="seed of the initial weights, split and training (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=S, help="device (default auto)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from archbench.cli._output import check_writable, console, print_json, quiet_libraries, write_file
    from archbench.cli._proxy_flags import PROXY_FLAGS, proxy_values
    from archbench.similarity.cka import MIN_BATCH
    from archbench.similarity.compare import compare, heatmap_png, parquet_bytes, resolve_operand
    from archbench.train.config import TrainConfig

    quiet_libraries()
    if args.output is not None and args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--output: {args.output}: give a .json or .parquet file")
    if args.images is not None and args.images < 1:
        raise UsageError(f"--images must be >= 1, got {args.images}")
    if args.cka_batch < MIN_BATCH:  # checked before any model is built
        raise UsageError(f"--cka-batch: CKA's unbiased estimator needs at least {MIN_BATCH} examples a batch, got {args.cka_batch}")
    for path, option in ((args.plot, "--plot"), (args.output, "--output")):
        if path is not None:
            check_writable(path, option)
    a, b = resolve_operand(args.a), resolve_operand(args.b)
    given = {k: v for k, v in vars(args).items() if k in (*PROXY_FLAGS, "seed", "device")}
    # A trial's own proxy settings are the default; flags change them, for both sides alike.
    base = next((o.train for o in (a, b) if o.train is not None), TrainConfig())
    config = replace(base, **proxy_values(given))

    out = console()
    status = None if args.json else out.status("comparing…")
    if status is not None:
        status.start()
    try:
        result = compare(
            a, b, config, trained=args.trained, batch_size=args.cka_batch, max_images=args.images,
            on_stage=(lambda text: status.update(f"{text}…")) if status is not None else None,
        )
    finally:
        if status is not None:
            status.stop()
    if args.plot is not None:
        write_file(args.plot, heatmap_png(result), "--plot")
    if args.output is not None:
        import json

        data = parquet_bytes(result) if args.output.suffix.lower() == ".parquet" else (json.dumps(result.to_dict(), indent=1) + "\n").encode()
        write_file(args.output, data, "--output")
    if args.json:
        print_json(result.to_dict())
        return 0
    out.print(result.summary(), soft_wrap=True)
    written = [str(p) for p in (args.plot, args.output) if p is not None]
    out.print(f"{result.seconds:.1f}s" + (f"; written: {', '.join(written)}" if written else ""), soft_wrap=True)
    return 0
