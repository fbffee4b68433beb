"""The search driver: open the run folder, then let Ray Tune schedule proxy trials that Optuna
samples (through Tune's OptunaSearch), a Parquet part written as each trial ends; resume included.

Resume uses the Optuna study (SQLite, committed on every ask/tell) and the Parquet parts (written as each
trial ends) as the source of truth, not Tune's periodic snapshot: after a kill -9 a snapshot may
predate trials that finished, which Tuner.restore would run twice. A resumed run starts a fresh
Tuner on the same study for the trials still missing, so every trial_id occurs exactly once; the
architectures of trials the stopped driver left unfinished are queued to be tried again first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archbench.errors import UserError
from archbench.search.options import SearchOptions
from archbench.search.prepare import SEARCH, load_space, prepare_run, resolve_device
from archbench.search.ray_session import RayUnavailable, ray_session
from archbench.search.sampling import make_searcher, open_storage, optuna_quiet, retry_unfinished, trials_in_study
from archbench.search.screen import screen
from archbench.search.trial import TrialPlan, run_trial
from archbench.store.run import RunDirLock, RunFolder, RunWrites

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from archbench.store.run import Manifest
    from archbench.train.data import Dataset

COMPLETED = ("ok", "failed", "pruned", "rejected")  # statuses that count toward --trials


@dataclass
class RunOutcome:
    run_dir: Path
    requested: int
    counts: dict[str, int]
    elapsed_s: float
    interrupted: bool
    stopped_by_budget: bool


def run_search(
    options: SearchOptions,
    *,
    command: list[str],
    overrides: set[str] = frozenset(),  # type: ignore[assignment]
    quiet: bool = True,
    live: bool = True,
    progress: bool = True,
) -> RunOutcome:
    """Run (or resume) one search end to end; returns where it landed and what happened.

    ``quiet`` sends Ray's output to ``<run>/ray.log``; ``live`` redraws progress in place on a
    terminal (else one line per trial); ``progress=False`` prints nothing. Bad options, spaces and
    datasets raise UserError (SpecError is one) before the run folder exists.
    """
    started = time.monotonic()
    # Before the run folder exists: a bad --dataset leaves nothing behind (a resume reads its own).
    data = options.train.load_dataset() if not options.resume and options.needs_data else None
    if not options.resume:
        resolve_device(options)  # --device cuda without one: refused before the folder exists
    lock = RunDirLock(SEARCH)
    try:
        with RunWrites(resume=options.resume, label=options.run_dir) as writes:
            options, run_dir, manifest = prepare_run(options, command, set(overrides), lock=lock)
            writes.path = run_dir
            if data is None and options.needs_data:
                data = options.train.load_dataset()
            try:
                with optuna_quiet():
                    return _search(options, RunFolder(run_dir), manifest, data, started=started, quiet=quiet, live=live, progress=progress)
            except (RayUnavailable, UserError):
                if not options.resume:  # nothing trained yet: the same command can be run again
                    RunFolder(run_dir).discard_unstarted()
                raise
    finally:
        lock.release()


def _search(
    options: SearchOptions, folder: RunFolder, manifest: Manifest, data: Dataset | None, *, started: float, quiet: bool, live: bool, progress: bool
) -> RunOutcome:
    from ray import tune

    from archbench.search.callbacks import PartWriter, ProgressView
    from archbench.search.limits import BudgetedLimiter

    space = load_space(options)
    storage = open_storage(folder)
    retry_unfinished(storage)
    folder.set_aside("interrupted")  # trials/ then holds exactly the trials that ended
    done = folder.trial_statuses()
    remaining = options.trials - _finished(done)
    if remaining <= 0:
        return RunOutcome(folder.path, options.trials, _counts(done), 0.0, False, False)
    screen(folder, storage, space, options, data)  # once a run: a resume finds the pool and its queue
    already = trials_in_study(storage)
    searcher = make_searcher(options, space, storage, already=already)
    device, gpus = resolve_device(options)
    plan = TrialPlan.of(options, space, run_id=manifest.run_id, device=device)
    writer = PartWriter(folder.path, options, manifest, space)
    view = ProgressView(options, folder.path, already=done, live=live, quiet=not progress)
    writer.on_record = view.add
    interrupted = False
    with ray_session(options, folder.ray_log, quiet=quiet):
        import ray

        from archbench.search.lease import create_leases, release_everywhere

        leases = create_leases(manifest.run_id) if plan.measure_latency else []
        writer.release_holder = partial(release_everywhere, leases)
        concurrency = options.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_trial))
        deadline = started + options.time_budget_min * 60 if options.time_budget_min else None
        limiter = BudgetedLimiter(searcher, max_concurrent=concurrency, deadline=deadline)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, plan=plan), {"cpu": options.cpus_per_trial, "gpu": gpus if device.startswith("cuda") else 0}
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                num_samples=remaining,
                search_alg=limiter,
                scheduler=_scheduler(options),
                reuse_actors=True,  # a worker process (and its torch/timm imports) serves trial after trial
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{already:05d}",
                storage_path=str(folder.ray_dir.resolve()),
                verbose=0,
                callbacks=[writer, view],  # the writer first: the view shows what is on disk
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
            ),
        )
        with view:
            try:
                tuner.fit()
            except KeyboardInterrupt:
                interrupted = True
        # Trials still live after fit() returned were stopped by Ctrl-C (Tune's graceful stop).
        interrupted = writer.record_unfinished() > 0 or interrupted
        for handle in leases:
            ray.kill(handle)
    done = folder.trial_statuses()
    # Tune's SIGINT handler ends fit() quietly: a Ctrl-C between trials shows only as trials missing.
    short = _finished(done) < options.trials
    interrupted = interrupted or (short and not limiter.budget_reached)
    return RunOutcome(folder.path, options.trials, _counts(done), time.monotonic() - started, interrupted, limiter.budget_reached)


def _scheduler(options: SearchOptions) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if options.scheduler == "asha":
        return ASHAScheduler(metric="val_acc", mode="max", time_attr="training_iteration", max_t=options.train.epochs, grace_period=1, reduction_factor=2)
    return FIFOScheduler()


def trial_dirname(trial: Trial) -> str:
    """Tune's per-trial folder under <run>/ray/: short, instead of the flattened config."""
    return f"trial-{trial.trial_id}"


def _finished(done: dict[str, str]) -> int:
    return sum(1 for status in done.values() if status in COMPLETED)


def _counts(done: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in done.values():
        counts[status] = counts.get(status, 0) + 1
    return counts
