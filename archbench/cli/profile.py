"""`archbench profile`: params, MACs, latency and memory of a zoo preset, spec file or timm model.
"""
from __future__ import annotations

import argparse
import sys

from rich.markup import escape
from rich.table import Table

from archbench._validate import MAX_BATCH, MAX_IMG_SIZE
from archbench.cli import UsageError
from archbench.cli._output import console, print_json, quiet_libraries


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="measure params, MACs, latency and memory of one model",
        description="Measure one model: a zoo preset (see `archbench zoo`), an architecture file "
        "(.yaml/.json), or timm:MODEL_NAME for any timm model (built without weights).",
    )
    parser.add_argument("target", metavar="NAME_OR_FILE", help="zoo preset, spec file, or timm:MODEL")
    parser.add_argument("--img-size", type=int, default=None, help=f"input resolution, 1 to {MAX_IMG_SIZE} (default: the model's own)")
    parser.add_argument("--batch-size", type=int, default=1, help=f"batch size for latency and memory, 1 to {MAX_BATCH} (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for latency (default: torch's)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"), help="latency dtype (autocast)")
    parser.add_argument("--no-latency", action="store_true", help="skip latency and memory (params and MACs only)")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout and nothing else")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    quiet_libraries()
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    from archbench.measure import profile  # after the option checks: torch takes seconds to import

    result = profile(
        args.target,
        img_size=args.img_size,
        batch_size=args.batch_size,
        device=args.device,
        latency=not args.no_latency,
        memory=not args.no_latency,
        threads=args.threads,
        dtype=args.dtype,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    table = Table(title=f"{result.name} @ {result.img_size}px", show_header=False)
    table.add_row("params", f"{result.params:,} ({result.params / 1e6:.2f}M)")
    table.add_row("MACs", f"{result.macs:,} ({result.macs / 1e9:.3f} G, counter: {result.flops_counter})")
    table.add_row("uncounted ops", ", ".join(f"{k}×{v}" for k, v in result.uncounted_ops.items()) or "none")
    if result.latency:
        lat = result.latency
        table.add_row(
            "latency",
            escape(  # the marks are in square brackets, which rich would take for markup
            f"median {lat.median:.2f} ms (p10 {lat.p10:.2f}, p90 {lat.p90:.2f}) over {lat.repeats} runs, "
            f"batch {lat.batch_size}, {lat.device} ({result.provenance['device_name']}), {lat.threads} threads, {lat.dtype}"
            + ("" if lat.stable else " [not stable]")
            + (f" [contended: other processes kept {lat.other_cores:.1f} cores busy]" if lat.contended else "")),
        )
    if result.memory:
        mem = result.memory
        table.add_row("memory", f"{mem.peak_bytes / 2**20:.1f} MiB ({mem.method}); weights {mem.weights_bytes / 2**20:.1f} MiB")
    console().print(table)
    if result.latency and result.latency.contended:
        print(
            f"archbench: warning: other processes kept {result.latency.other_cores:.1f} of the machine's cores busy while timing "
            "(load average {:.1f}): this latency is not the model's alone; measure again on an idle machine".format(result.latency.loadavg or 0.0),
            file=sys.stderr,
        )
    return 0
