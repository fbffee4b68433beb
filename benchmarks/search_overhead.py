"""Per-trial overhead of `archbench search` against a bare Ray Tune loop running the same trial
function on the same architecture; prints seconds per trial of both and their ratio.

The harness adds, per trial: an Optuna ask/tell on SQLite with define-by-run sampling (and the
space's constraint check), the Parquet part written by the driver, the progress view; per run:
the run folder, manifest and study. The bare loop is `tune.Tuner` over a grid of ready-made
configs with the same trainable (`archbench.search.trial.run_trial`), resources, concurrency and
actor reuse, and no searcher, callbacks or storage beyond Tune's own. Both share one Ray instance
(started once, not timed) and alternate, the order flipped every repeat; the best of each is kept.

Run:  OMP_NUM_THREADS=1 python benchmarks/search_overhead.py [--trials 8] [--repeats 2]
Two workloads: `count` (objective macs: the trial only builds and counts the model, so the harness
overhead is most visible) and `train` (val_acc: plus the zero-cost scores and one epoch of proxy
training on digits).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import yaml

from archbench import zoo
from archbench.train import TrainConfig, scale_arch

# A small fixed architecture (a space of size one), so both loops do the very same work per trial.
ARCH = scale_arch(zoo.get("deit_ti"), width_mult=0.25, depth_mult=0.34, img_size=32, num_classes=10)
# One epoch on digits at 32 px, the architecture as it is (no further proxy scaling), in all three loops.
TRAIN = TrainConfig(dataset="digits", train_images=None, epochs=1, batch_size=64, lr=2e-3, proxy_img_size=32, proxy_width_mult=1.0, proxy_depth_mult=1.0, seed=0)


def harness(arch_file: Path, workdir: Path, *, trials: int, objectives: str, concurrency: int) -> float:
    """Wall seconds of run_search (the CLI's code path, without the final leaderboard)."""
    from archbench.objectives import parse_objectives
    from archbench.search.options import SearchOptions
    from archbench.search.runner import run_search

    options = SearchOptions(
        space=str(arch_file), trials=trials, concurrency=concurrency, objectives=parse_objectives(objectives),
        run_dir=str(workdir / f"harness-{time.monotonic_ns()}"), train=TRAIN,
    )
    start = time.perf_counter()
    outcome = run_search(options, command=["benchmark"], live=False, progress=False)
    elapsed = time.perf_counter() - start
    assert outcome.counts == {"ok": trials}, outcome.counts
    return elapsed


def bare(arch_file: Path, workdir: Path, *, trials: int, objectives: str, concurrency: int) -> float:
    """Wall seconds of a plain Tuner running run_trial on the same configs."""
    from ray import tune

    from archbench import space as spaces
    from archbench.objectives import parse_objectives
    from archbench.search.trial import TrialPlan, run_trial

    start = time.perf_counter()
    objs = parse_objectives(objectives)
    training = any(o.name == "val_acc" for o in objs)
    space = spaces.load(str(arch_file))
    arch = space.sample(0, constrained=False)
    data = TRAIN.load_dataset() if training else None
    plan = TrialPlan(
        run_id=f"bare{time.monotonic_ns()}", train=replace(TRAIN, device="cpu", threads=1), needs_training=training,
        measure_latency=False, max_latency_ms=None, latency_batch_size=1, latency_threads=None, target_img_size=32,
        target_num_classes=10, constraints=None,
    )
    trainable = tune.with_resources(tune.with_parameters(run_trial, data=data, plan=plan), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial_number": tune.grid_search(list(range(trials))), "arch": arch.to_dict(), "violation": ""},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(workdir / f"bare-{time.monotonic_ns()}"), verbose=0),
    )
    results = tuner.fit()
    elapsed = time.perf_counter() - start
    assert not results.errors and len(results) == trials
    return elapsed


def work_alone(*, objectives: str, repeats: int = 3) -> float:
    """Seconds of one trial's work called directly, no Ray: count the model (and score it at
    initialisation and train one epoch)."""
    from archbench.search.trial import _cheap_objectives
    from archbench.train import train_proxy
    from archbench.train.zero_cost import zero_cost_of

    training = objectives.startswith("val_acc")
    data = TRAIN.load_dataset() if training else None
    best = float("inf")
    for seed in range(repeats):
        start = time.perf_counter()
        _cheap_objectives(ARCH)
        if training:
            zero_cost_of(ARCH, data, replace(TRAIN, device="cpu", threads=1, seed=seed))
            train_proxy(ARCH, data, replace(TRAIN, device="cpu", threads=1, seed=seed))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workloads", default="count,train")
    args = parser.parse_args()

    import logging

    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="abso", dir="/tmp"))
    arch_file = workdir / "tiny_deit.yaml"
    arch_file.write_text(yaml.safe_dump(ARCH.to_dict(), sort_keys=False))
    ray.init(address="local", num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, namespace="archbench")
    for name in ("ray", "ray.tune", "ray.train", "timm"):
        logging.getLogger(name).setLevel(logging.ERROR)

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}")
    print(f"torch threads 1 per trial, {args.trials} trials, concurrency {args.concurrency}, best of {args.repeats}")
    print(f"architecture: {ARCH.summary()} at 32 px (a space of size one), digits, 1 epoch")
    print()
    print("| workload | trial work alone, s | bare Tune s/trial | archbench s/trial | overhead s/trial | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    objectives = {"count": "macs:min", "train": "val_acc:max"}
    raw: dict[str, dict[str, list[float]]] = {}
    for workload in args.workloads.split(","):
        runs: dict[str, list[float]] = {"bare": [], "harness": []}
        for rep in range(args.repeats):
            order = ("bare", "harness") if rep % 2 == 0 else ("harness", "bare")
            for which in order:
                fn = bare if which == "bare" else harness
                runs[which].append(fn(arch_file, workdir, trials=args.trials, objectives=objectives[workload], concurrency=args.concurrency))
        b, h = min(runs["bare"]) / args.trials, min(runs["harness"]) / args.trials
        alone = work_alone(objectives=objectives[workload])
        print(f"| {workload} | {alone:.2f} | {b:.2f} | {h:.2f} | {h - b:+.2f} | {h / b:.2f} |", flush=True)
        raw[workload] = runs
    print(f"\nload average after: {os.getloadavg()[0]:.1f}; wall seconds of every run: {raw}")
    ray.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
