"""The search driver: run folder and manifest, Optuna (through Ray Tune's OptunaSearch) sampling
architectures, Ray Tune scheduling proxy trials, parts written as trials end, resume.

Resume uses the Optuna study (SQLite, committed on every ask/tell) and the Parquet parts (written as each
trial ends) as the source of truth, not Tune's periodic snapshot: after a kill -9 a snapshot may
predate trials that finished, which Tuner.restore would run twice. A resumed run starts a fresh
Tuner on the same study for the trials still missing, so every trial_id occurs exactly once; the
architectures of trials the stopped driver left unfinished are queued to be tried again first.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass, replace
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from archbench.search.manifest import Manifest, read_manifest, write_manifest
from archbench.search.options import SearchOptions
from archbench.search.trial import TrialPlan, run_trial

COMPLETED = ("ok", "failed", "pruned", "rejected")  # statuses that count toward --trials
STUDY_NAME = "archbench"


@dataclass
class RunOutcome:
    run_dir: Path
    requested: int
    counts: dict[str, int]
    elapsed_s: float
    interrupted: bool
    stopped_by_budget: bool


def default_run_dir(space_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(space_name).stem}-{stamp}"


class RunDirLock:
    """An exclusive ``flock`` on ``<run>/.lock`` held while a driver works on the run, so a second
    ``--resume`` of a live run fails at once instead of failing its running trials; the kernel
    drops the lock when the driver dies, however it dies."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise ValueError(f"--run-dir: {run_dir} is in use by another archbench search (pid {holder})") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def prepare_run(
    options: SearchOptions, command: list[str], overrides: set[str], lock: RunDirLock | None = None
) -> tuple[SearchOptions, Path, Manifest]:
    """Create (or, with --resume, reopen) the run folder; errors are ValueErrors naming the option.

    ``lock`` (when given) is acquired on the folder before anything in it changes.
    """
    from archbench import space as spaces

    if options.resume:
        if not options.run_dir:
            raise ValueError("--resume needs --run-dir of the run to continue")
        run_dir = Path(options.run_dir)
        manifest = read_manifest(run_dir)
        if lock is not None:
            lock.acquire(run_dir)
        stored = SearchOptions.from_dict(manifest.options)
        # A resumed run keeps its own settings; only these may change on the command line.
        changeable = {"trials", "time_budget_min", "concurrency", "ray_address", "cpus_per_trial", "gpus_per_trial"}
        updates = {k: getattr(options, k) for k in overrides & changeable}
        options = replace(stored, resume=True, run_dir=str(run_dir), **updates)
        manifest = replace(manifest, options=options.to_dict(), resumed=manifest.resumed + [" ".join(command)])
        write_manifest(run_dir, manifest)
        return options, run_dir, manifest
    space = spaces.load(options.space)
    with_bounds(space, options).check_feasible()  # an impossible --max-macs fails before the folder exists
    run_dir = Path(options.run_dir) if options.run_dir else default_run_dir(space.name)
    if (run_dir / "manifest.json").exists() or any((run_dir / "trials").glob("part-*.parquet")):
        raise ValueError(f"--run-dir: {run_dir} already holds a run; pass --resume to continue it or choose another folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        lock.acquire(run_dir)
    options = replace(options, run_dir=str(run_dir))
    manifest = Manifest.new(options, space, command)
    write_manifest(run_dir, manifest, space_text=space.source_text)
    return options, run_dir, manifest


def load_space(options: SearchOptions, manifest: Manifest) -> Any:
    from archbench import space as spaces

    space = spaces.load(str(Path(options.run_dir) / "space.yaml")) if (Path(options.run_dir) / "space.yaml").exists() else spaces.load(options.space)
    return with_bounds(space, options)


def with_bounds(space: Any, options: SearchOptions) -> Any:
    """The space under --max-macs / --max-params where given (they override the space's own)."""
    bounds = {k: v for k, v in (("max_macs", options.max_macs), ("max_params", options.max_params)) if v is not None}
    return space.with_constraints(**bounds) if bounds else space


def resolve_device(options: SearchOptions) -> tuple[str, float]:
    import torch

    device = options.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not options.ray_address else "cpu"
    if device == "cuda" and not options.ray_address and not torch.cuda.is_available():
        raise ValueError("--device cuda: this machine has no CUDA device")
    gpus = options.gpus_per_trial
    if device == "cuda" and gpus == 0:
        gpus = 0.25  # four small proxies share a GPU; Ray schedules the fractions, it does not isolate memory
    return device, gpus


def constraint_flags(trial: Any) -> list[float]:
    """Optuna constraints_func: > 0 marks a trial infeasible (flagged when it was sampled)."""
    return [1.0 if trial.user_attrs.get("violation") else 0.0]


def make_sampler(options: SearchOptions, seed: int) -> Any:
    """The Optuna sampler, with the space's constraints (flagged at sampling time) made known to it."""
    import optuna

    constraints = constraint_flags
    if options.sampler == "nsga2":
        population = max(4, min(50, options.trials // 2))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=constraints)
    if options.sampler == "tpe":
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna: no warning for the user
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, n_startup_trials=max(2, min(10, options.trials // 3)), constraints_func=constraints
            )
    if options.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(2, min(10, options.trials // 3)), constraints_func=constraints)
    return optuna.samplers.RandomSampler(seed=seed)


@dataclass(frozen=True)
class DefineByRun:
    """What OptunaSearch calls per trial: the architecture plus the constraint verdict (a meta-device
    count, cheap). A class, not a closure, because Tune pickles its searcher with the run state.

    A draw the space cannot turn into an architecture (a user space whose choices clash) becomes a
    trial without an architecture, recorded as rejected, rather than an exception in Tune's loop.
    """

    space: Any

    def __call__(self, trial: Any) -> dict[str, Any]:
        import optuna

        from archbench.space import InvalidSample

        try:
            arch = self.space.suggest(trial)
        except optuna.TrialPruned as err:
            reason = str(err) or "invalid architecture"
            trial.set_user_attr("violation", reason)
            return {"trial_number": trial.number, "arch": None, "violation": reason}
        try:
            violation = self.space.check_arch(arch) if self.space.constraints.needs_estimate else None
        except InvalidSample as err:  # valid as data, but it does not build at the target size
            violation = f"invalid architecture: {err}"
        trial.set_user_attr("arch_hash", arch.hash)
        trial.set_user_attr("violation", violation or "")
        return {"trial_number": trial.number, "arch": arch.to_dict(), "violation": violation or ""}


def ray_address(options: SearchOptions) -> str:
    """--ray-address, else $RAY_ADDRESS (Ray's own convention), else a new local instance.

    Never Ray's default of silently joining whatever cluster ``ray start`` last started here.
    """
    return options.ray_address or os.environ.get("RAY_ADDRESS") or "local"


@contextlib.contextmanager
def ray_session(options: SearchOptions, run_dir: Path, *, quiet: bool) -> Iterator[None]:
    """Start (or join, with --ray-address) Ray without a dashboard; Ray's output goes to ray.log."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    log_path = run_dir / "ray.log"
    handler = logging.FileHandler(log_path)
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).propagate = False
    started_here = False
    try:
        with redirect_stderr(log_path, enabled=quiet):
            if not ray.is_initialized():
                address = ray_address(options)
                if address != "local":
                    _check_reachable(address, "--ray-address" if options.ray_address else "$RAY_ADDRESS")
                    _use_local_token(address)
                try:
                    ray.init(
                        address=address,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                        namespace="archbench",
                    )
                except (ConnectionError, ValueError, RuntimeError) as err:
                    where = "--ray-address" if options.ray_address else "$RAY_ADDRESS" if address != "local" else "ray"
                    raise RayUnavailable(f"{where}: cannot start or join Ray at {address}: {_first_line(err)}") from None
                started_here = True
            try:
                yield
            finally:
                if started_here:
                    ray.shutdown()
    finally:
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def _check_reachable(address: str, where: str) -> None:
    """Fail at once when nothing listens at a ``host:port`` address (ray.init retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://, auto and other forms are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise RayUnavailable(f"{where}: cannot join Ray at {address}: {err.strerror or err} (is `ray start --head` running there?)") from None


def _use_local_token(address: str) -> None:
    """Join a token-authenticated cluster as `ray start --address` does: with RAY_AUTH_MODE unset,
    a token found locally (~/.ray/auth_token, $RAY_AUTH_TOKEN[_PATH]) turns token auth on. Ray's
    ray.init() does this only for clusters it finds itself, not for an explicit address; a cluster
    without authentication accepts a client that sends a token."""
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # a Ray without token authentication
        return
    with contextlib.suppress(Exception):
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class RayUnavailable(ValueError):
    """Ray could not be started or joined (a wrong --ray-address): reported as bad input."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def discard_unstarted_run(run_dir: Path) -> None:
    """Remove what a fresh run wrote before it could start (so the same command can be run again):
    only our own files, and the folder only if that leaves it empty."""
    if any((run_dir / "trials").glob("part-*.parquet")):
        return
    for name in ("manifest.json", "space.yaml", "optuna.db", "ray.log", ".lock"):
        (run_dir / name).unlink(missing_ok=True)
    for folder in (run_dir / "ray", run_dir / "trials"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


@contextlib.contextmanager
def redirect_stderr(path: Path, *, enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 (Ray's C++ and Python chatter) to ``path`` while enabled."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def completed_trials(run_dir: Path) -> dict[str, str]:
    """trial_id -> status of every part already written."""
    from archbench.store import read_trials

    frame = read_trials(run_dir, on_bad="skip")
    return dict(zip(frame["trial_id"], frame["status"]))


def retry_unfinished(storage: Any, run_dir: Path) -> list[int]:
    """Trials a stopped driver left RUNNING in the study (kill -9, Ctrl-C) are told FAIL, so samplers
    ignore them, and their architectures are queued so the resumed run tries them first (under new
    trial ids). Parts recorded as ``interrupted`` move to ``<run>/interrupted/``: ``trials/`` then
    holds exactly the trials that completed. Returns the numbers of the trials queued again."""
    import optuna

    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        return []
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            retried.append(trial.number)
    _set_aside_interrupted(run_dir)
    return retried


def _set_aside_interrupted(run_dir: Path) -> None:
    from archbench.store import part_files, read_part

    aside = run_dir / "interrupted"
    for path in part_files(run_dir):
        try:
            status = read_part(path).column("status")[0].as_py()
        except Exception:
            continue  # an unreadable part is the reader's to report, not ours to move
        if status == "interrupted":
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)


def trial_dirname(trial: Any) -> str:
    """Tune's per-trial folder under <run>/ray/: short, instead of the flattened config."""
    return f"trial-{trial.trial_id}"


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
    datasets raise ValueError (or SpecError) before the run folder exists.
    """
    import optuna

    from archbench.train.data import load_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created ..." is not for the terminal
    started = time.monotonic()
    data = None
    if not options.resume and options.needs_training:
        # Before the run folder exists: a bad --dataset leaves nothing behind.
        data = load_dataset(options.dataset, img_size=options.proxy_img_size, seed=options.seed)
    lock = RunDirLock()
    fresh = not options.resume
    try:
        options, run_dir, manifest = prepare_run(options, command, set(overrides), lock=lock)
        if data is None and options.needs_training:
            data = load_dataset(options.dataset, img_size=options.proxy_img_size, seed=options.seed)
        try:
            return _search(options, run_dir, manifest, data, started=started, quiet=quiet, live=live, progress=progress)
        except RayUnavailable:
            if fresh:
                discard_unstarted_run(run_dir)
            raise
    finally:
        lock.release()


def _search(
    options: SearchOptions, run_dir: Path, manifest: Manifest, data: Any, *, started: float, quiet: bool, live: bool, progress: bool
) -> RunOutcome:
    import optuna
    from optuna.storages import RDBStorage
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from archbench.search.callbacks import PartWriter, ProgressView
    from archbench.search.limits import BudgetedLimiter

    space = load_space(options, manifest)
    device, gpus = resolve_device(options)
    needs_latency = any(o.name == "latency_ms" for o in options.objectives) or space.constraints.max_latency_ms is not None

    # SQLite is transactional (a kill -9 loses no committed ask/tell) and pickles with Tune's
    # experiment state; only this driver writes to it (the run folder's lock sees to that).
    storage = RDBStorage(f"sqlite:///{(run_dir / 'optuna.db').resolve()}")
    retry_unfinished(storage, run_dir)
    done = completed_trials(run_dir)
    finished = sum(1 for status in done.values() if status in COMPLETED)
    remaining = options.trials - finished
    if remaining <= 0:
        return RunOutcome(run_dir, options.trials, _counts(done), 0.0, False, False)
    try:
        already = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    except KeyError:
        already = 0
    # A resumed run continues the sampler's random stream instead of replaying it.
    sampler = make_sampler(options, options.seed + already)
    metrics = [o.metric for o in options.objectives]
    modes = [o.direction for o in options.objectives]
    searcher = OptunaSearch(
        space=DefineByRun(space),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        sampler=sampler,
        study_name=STUDY_NAME,
        storage=storage,
    )
    plan = TrialPlan(
        run_id=manifest.run_id,
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        weight_decay=options.weight_decay,
        warmup_epochs=options.warmup_epochs,
        label_smoothing=options.label_smoothing,
        mixup=options.mixup,
        cutmix=options.cutmix,
        proxy_img_size=options.proxy_img_size,
        proxy_width_mult=options.proxy_width_mult,
        proxy_depth_mult=options.proxy_depth_mult,
        device=device,
        cpus_per_trial=options.cpus_per_trial,
        seed=options.seed,
        needs_training=options.needs_training,
        measure_latency=needs_latency,
        max_latency_ms=space.constraints.max_latency_ms,
        latency_batch_size=options.latency_batch_size,
        latency_threads=options.latency_threads,
        target_img_size=space.target.img_size,
        target_num_classes=space.target.num_classes,
        constraints=space.constraints,
    )
    writer = PartWriter(run_dir, options, manifest, space)
    view = ProgressView(options, run_dir, already=done, live=live, quiet=not progress)
    writer.on_record = view.add
    interrupted = False
    with ray_session(options, run_dir, quiet=quiet):
        import ray

        from archbench.search.lease import create_leases

        leases = create_leases(manifest.run_id) if needs_latency else []
        writer.release_holder = partial(release_everywhere, leases)
        concurrency = options.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_trial))
        deadline = started + options.time_budget_min * 60 if options.time_budget_min else None
        limiter = BudgetedLimiter(searcher, max_concurrent=concurrency, deadline=deadline)
        scheduler = (
            ASHAScheduler(metric="val_acc", mode="max", time_attr="training_iteration", max_t=options.epochs, grace_period=1, reduction_factor=2)
            if options.scheduler == "asha"
            else FIFOScheduler()
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, data=data, plan=plan),
            {"cpu": options.cpus_per_trial, "gpu": gpus if device == "cuda" else 0},
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                num_samples=remaining,
                search_alg=limiter,
                scheduler=scheduler,
                # A worker process (and its torch/timm imports) serves trial after trial.
                reuse_actors=True,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{already:05d}",
                storage_path=str((run_dir / "ray").resolve()),
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
    done = completed_trials(run_dir)
    # Tune's SIGINT handler ends fit() quietly: a Ctrl-C between trials shows only as trials missing.
    short = sum(1 for status in done.values() if status in COMPLETED) < options.trials
    interrupted = interrupted or (short and not limiter.budget_reached)
    return RunOutcome(run_dir, options.trials, _counts(done), time.monotonic() - started, interrupted, limiter.budget_reached)


def release_everywhere(leases: list[Any], holder: str) -> None:
    """Free whatever lease ``holder`` (a trial that ended, maybe abruptly) still holds on any node."""
    for handle in leases:
        handle.release.remote(holder)


def _counts(done: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in done.values():
        counts[status] = counts.get(status, 0) + 1
    return counts
