"""The fidelity study's driver: open (or resume) its run folder, plan the architectures, train every
(architecture, fidelity, seed) on Ray workers with one Parquet part each, then analyse the ranks.

The parts are the source of truth: a resumed study (after Ctrl-C or ``kill -9``) runs exactly the
evaluations that have no part, so each is recorded once. Only the driver writes parts.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from archbench.errors import UserError
from archbench.fidelity.options import FidelityOptions
from archbench.fidelity.plan import PROXY, REFERENCE, Evaluation, FidelityPlan, PlannedArch, make_plan
from archbench.fidelity.reference_from import ReferenceStudy, take_reference_parts
from archbench.search.ray_session import RayUnavailable
from archbench.store.run import Manifest, RunDirLock, RunFolder, RunWrites

if TYPE_CHECKING:
    from archbench.fidelity.analysis import FidelityAnalysis
    from archbench.space import Space
    from archbench.train.config import TrainConfig
    from archbench.train.data import Dataset

FIDELITY = "fidelity"  # this kind of run, in its manifest and its lock
CHANGEABLE_ON_RESUME = frozenset({"concurrency", "cpus_per_trial", "ray_address"})
LATENCY_ISOLATION = "timed in the driver before any evaluation starts (nothing else running)"


@dataclass
class FidelityOutcome:
    run_dir: Path
    planned: int
    counts: dict[str, int]
    elapsed_s: float
    interrupted: bool
    analysis: FidelityAnalysis | None


def default_run_dir(space_name: str) -> Path:
    return Path("runs") / f"fidelity-{Path(space_name).stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def run_fidelity(
    options: FidelityOptions, *, command: list[str], overrides: set[str] = frozenset(), quiet: bool = True, live: bool = True, progress: bool = True  # type: ignore[assignment]
) -> FidelityOutcome:
    """Run (or resume) one fidelity study end to end.

    Bad options, spaces and datasets raise UserError before the run folder exists.
    """
    from archbench.fidelity.progress import FidelityProgress

    started = time.monotonic()
    lock = RunDirLock(FIDELITY)
    try:
        with RunWrites(resume=options.resume, label=options.run_dir) as writes:
            if options.resume:
                options, folder, manifest = _reopen(options, command, overrides, lock)
                writes.path = folder.path
                plan = FidelityPlan.read(folder.plan_path)
                data = _datasets(options)
            else:
                from archbench import space as spaces

                source = ReferenceStudy.open(options.reference_from) if options.reference_from else None
                if source is not None:
                    options = source.adopt(options)
                    space = spaces.load(source.folder.space_copy)  # the space its architectures were drawn from
                else:
                    space = spaces.load(options.space)
                data = _datasets(options)  # a bad --dataset leaves nothing behind
                folder = RunFolder.create(options.run_dir or default_run_dir(space.name))
                writes.path = folder.path
                lock.acquire(folder.path)
                options = replace(options, run_dir=str(folder.path))
                manifest = _manifest(options, space, command)
                view = FidelityProgress(folder.path, total=options.archs * options.evaluations_per_arch, live=live, quiet=not progress)
                try:
                    plan = source.plan_for(options) if source is not None else make_plan(space, options, progress=view.planning)
                except BaseException:
                    folder.discard_unstarted()
                    raise
                folder.write_manifest(manifest, space_text=space.source_text)
                plan.write(folder.plan_path)
            if options.reference_from:  # on --resume too: copies a kill -9 cut off
                take_reference_parts(options.reference_from, folder, plan)
            try:
                return _study(options, folder, manifest, plan, data, started=started, quiet=quiet, live=live, progress=progress)
            except RayUnavailable:
                if not options.resume:
                    folder.discard_unstarted()  # nothing ran: the same command can simply be run again
                raise
    finally:
        lock.release()


def _reopen(options: FidelityOptions, command: list[str], overrides: set[str], lock: RunDirLock) -> tuple[FidelityOptions, RunFolder, Manifest]:
    folder, manifest = RunFolder.reopen(options.run_dir, FIDELITY, what="a fidelity study", lock=lock)
    stored = FidelityOptions.from_dict(manifest.options)
    updates = {k: getattr(options, k) for k in overrides & CHANGEABLE_ON_RESUME}
    options = replace(stored, resume=True, run_dir=str(folder.path), **updates)
    manifest = replace(manifest, options=options.to_dict(), resumed=manifest.resumed + [" ".join(command)])
    folder.write_manifest(manifest)
    return options, folder, manifest


def _datasets(options: FidelityOptions) -> dict[str, Dataset]:
    """The dataset at each fidelity's resolution (one load when the two agree)."""
    def source(c: TrainConfig) -> tuple[Any, ...]:
        return (c.dataset, c.proxy_img_size, c.seed, c.train_images)

    proxy = options.proxy.load_dataset()
    same = source(options.reference) == source(options.proxy)
    return {PROXY: proxy, REFERENCE: proxy if same else options.reference.load_dataset()}


def _manifest(options: FidelityOptions, space: Space, command: list[str]) -> Manifest:
    from archbench.search.prepare import new_manifest

    return new_manifest(
        FIDELITY, options=options.to_dict(), space=space, source=options.space, command=command, objectives=[], seed=options.seed,
        latency_isolation=LATENCY_ISOLATION,
    )


def _study(
    options: FidelityOptions, folder: RunFolder, manifest: Manifest, plan: FidelityPlan, data: dict[str, Dataset],
    *, started: float, quiet: bool, live: bool, progress: bool,
) -> FidelityOutcome:
    from archbench.fidelity.progress import FidelityProgress
    from archbench.search.ray_session import ray_session

    done = folder.trial_statuses()
    evaluations = plan.evaluations()
    pending = [e for e in evaluations if e.eval_id not in done]
    view = FidelityProgress(folder.path, total=len(evaluations), already=done, live=live, quiet=not progress)
    interrupted = False
    if pending:
        with ray_session(options, folder.ray_log, quiet=quiet), view:
            try:
                _run_pending(options, folder, manifest, plan, data, pending, view.add)
            except KeyboardInterrupt:
                interrupted = True
    done = folder.trial_statuses()
    counts: dict[str, int] = {}
    for status in done.values():
        counts[status] = counts.get(status, 0) + 1
    analysis = None
    if not interrupted and all(e.eval_id in done for e in evaluations):
        analysis = analyse_run(folder.path)
    return FidelityOutcome(folder.path, len(evaluations), counts, time.monotonic() - started, interrupted, analysis)


def _run_pending(
    options: FidelityOptions, folder: RunFolder, manifest: Manifest, plan: FidelityPlan, data: dict[str, Dataset],
    pending: list[Evaluation], on_record: Callable[[Any], None],
) -> None:
    import ray

    from archbench.fidelity.evaluate import config_for, evaluate

    device, gpus = _device(options)
    concurrency = options.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_trial))
    remote = ray.remote(evaluate).options(num_cpus=options.cpus_per_trial, num_gpus=gpus, max_retries=0)
    data_refs = {k: ray.put(v) for k, v in data.items()}
    archs = {a.index: a for a in plan.archs}
    queue = list(pending)
    in_flight: dict[Any, Evaluation] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < concurrency:
                e = queue.pop(0)
                config = config_for(e, options.proxy, options.reference, device=device, threads=options.cpus_per_trial)
                in_flight[remote.remote(e, archs[e.arch_index], data_refs[e.fidelity], config)] = e
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                e = in_flight.pop(ref)
                try:
                    fields = ray.get(ref)
                except Exception as err:  # the worker died (killed, out of memory): recorded, not retried
                    fields = {"status": "failed", "error": f"the evaluation's worker died: {str(err).splitlines()[0][:400]}"}
                on_record(_write(folder, manifest, archs[e.arch_index], e, fields))
    finally:
        for ref in in_flight:  # Ctrl-C: the evaluations cut off get no part and run again on --resume
            ray.cancel(ref, force=True)


def _device(options: FidelityOptions) -> tuple[str, float]:
    import torch

    device = options.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not options.ray_address else "cpu"
    if device == "cuda" and not options.ray_address and not torch.cuda.is_available():
        raise UserError("--device cuda: this machine has no CUDA device")
    return device, (0.25 if device == "cuda" else 0.0)  # four small proxies share a GPU


# Keys of an evaluation's result kept in extra_json rather than columns.
_EXTRA = ("traceback", "zero_cost_error")


def _write(folder: RunFolder, manifest: Manifest, planned: PlannedArch, e: Evaluation, fields: dict[str, Any]) -> Any:
    from archbench.store import TrialRecord, write_trial
    from archbench.store.schema import COLUMNS

    arch = planned.arch
    columns = {k: v for k, v in fields.items() if k in COLUMNS and k not in ("started_at", "finished_at")}
    extra = {k: fields[k] for k in _EXTRA if k in fields}
    extra.update(arch_index=e.arch_index, seed_index=e.seed_index)
    record = TrialRecord(
        run=folder.path.name,
        trial_id=e.eval_id,
        arch_name=arch.name,
        arch_hash=planned.arch_hash,
        arch_summary=planned.arch_summary,
        arch_json=planned.arch_json,
        img_size=arch.input.img_size,
        params=planned.params,
        macs=planned.macs,
        latency_ms_median=planned.latency_ms_median,
        fidelity=e.fidelity,
        space=manifest.space.get("name"),
        started_at=_timestamp(fields.get("started_at")),
        finished_at=_timestamp(fields.get("finished_at")) or datetime.now(timezone.utc),
        extra_json=json.dumps(extra, default=str),
        **{"status": "failed", **columns},
    )
    write_trial(folder.path, record)
    return record


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if isinstance(value, (int, float)) else None


def analyse_run(run_dir: Path, *, n_boot: int = 2000) -> FidelityAnalysis:
    """Analyse a study's parts and store the analysis (``fidelity.json``) and scatter (``fidelity.png``)."""
    from archbench.fidelity.analysis import analyse
    from archbench.fidelity.plot import scatter_png
    from archbench.store import read_trials

    folder = RunFolder(run_dir)
    frame = read_trials(folder.path, on_bad="skip")
    analysis = analyse(frame, n_boot=n_boot)
    folder.analysis_path.write_text(json.dumps(analysis.to_dict(), indent=1) + "\n")
    scatter_png(frame, analysis, folder.scatter_path)
    return analysis


__all__ = ["FIDELITY", "FidelityOutcome", "analyse_run", "default_run_dir", "run_fidelity"]
