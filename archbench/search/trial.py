"""One search trial, as it runs on a Ray worker: reject, time in isolation, score the proxy at
initialisation (zero-cost signals), train it, report.

Every report carries the whole record so far (flat keys), so the driver can write the trial's
Parquet part from the last one whatever way the trial ends (finished, pruned, failed, interrupted).
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ray import tune

from archbench.search.lease import DeviceHold, lease_for_this_node
from archbench.train.config import TrainConfig
from archbench.train.data import Dataset

if TYPE_CHECKING:
    from archbench.objectives import Objective
    from archbench.search.options import SearchOptions
    from archbench.space import Constraints, Space
    from archbench.spec import ArchSpec
    from archbench.train.loop import EpochResult


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one run shares (handed once through the object store).

    ``train`` has the run's device decided and ``threads`` set to the trial's CPUs; each trial
    trains (and scores its proxy at initialisation) with ``train.for_trial(number)``.
    """

    run_id: str
    train: TrainConfig
    needs_training: bool
    measure_latency: bool
    max_latency_ms: float | None
    latency_batch_size: int
    latency_threads: int | None
    target_img_size: int
    target_num_classes: int
    constraints: Constraints | None = None  # the space's, re-checked with the audited counts
    objectives: tuple[Objective, ...] = ()  # Optuna needs a number for each, whatever happens

    @classmethod
    def of(cls, options: SearchOptions, space: Space, *, run_id: str, device: str) -> TrialPlan:
        """The plan of a run with ``options`` over ``space``, trials on ``device`` (decided by the driver)."""
        return cls(
            run_id=run_id,
            train=replace(options.train, device=device, threads=options.cpus_per_trial),
            needs_training=options.needs_training,
            measure_latency=any(o.name == "latency_ms" for o in options.objectives) or space.constraints.max_latency_ms is not None,
            max_latency_ms=space.constraints.max_latency_ms,
            latency_batch_size=options.latency_batch_size,
            latency_threads=options.latency_threads,
            target_img_size=space.target.img_size,
            target_num_classes=space.target.num_classes,
            constraints=space.constraints,
            objectives=options.objectives,
        )


class TrialFailed(RuntimeError):
    """Raised after a `failed` report so Tune (and Optuna) mark the trial as errored."""


def _objective_placeholders(record: dict[str, Any], objectives: tuple[Objective, ...] = ()) -> dict[str, Any]:
    # Optuna needs a number for every objective even for a rejected trial; constraint flags make
    # such trials infeasible for the sampler, and these values make them dominated besides. A
    # zero-cost score that is None (not finite, or not computed) is the worst value likewise.
    record.setdefault("val_acc", 0.0)
    record.setdefault("val_loss", math.inf)
    record.setdefault("latency_ms_median", math.inf)
    for o in objectives:
        if record.get(o.metric) is None:
            record[o.metric] = -math.inf if o.direction == "max" else math.inf
    return record


def run_trial(config: dict[str, Any], *, data: Dataset | None, plan: TrialPlan) -> None:
    """The Ray Tune function trainable (wrapped with ``tune.with_parameters``)."""
    from archbench.spec import ArchSpec

    record: dict[str, Any] = {
        "trial_number": config["trial_number"],
        "status": "running",
        "error": "",
        "started_at": time.time(),
        "epochs_run": 0,
    }
    if config.get("arch") is None:  # the space could not produce an architecture from this draw
        record.update(status="rejected", error=config.get("violation") or "invalid architecture", finished_at=time.time())
        tune.report(_objective_placeholders(record, plan.objectives))
        return
    arch = ArchSpec.from_dict(config["arch"])
    hold = DeviceHold(lease_for_this_node(plan.run_id), lease_holder(plan.run_id, config["trial_number"]))
    if hold.lease is not None:
        record["lease_windows"] = hold.windows  # the same list: windows land as the trial takes them
    too_large = _too_large(arch, plan)
    if too_large:  # refused from its meta count: building it would allocate until the OS kills the worker
        record.update(status="rejected", error=too_large, finished_at=time.time())
        tune.report(_objective_placeholders(record, plan.objectives))
        return
    try:
        # Building and tracing the full-size model is heavy CPU work: no latency is timed meanwhile.
        with hold.shared():
            record.update(_cheap_objectives(arch))
    except Exception as err:
        _fail(record, err, plan)
    violation = config.get("violation") or (
        plan.constraints.violated(record["params"], record["macs"]) if plan.constraints is not None else None
    )
    if violation:
        record.update(status="rejected", error=violation, finished_at=time.time())
        tune.report(_objective_placeholders(record, plan.objectives))
        return
    try:
        if plan.measure_latency:
            record.update(_latency(arch, plan, hold))
            if plan.max_latency_ms is not None and record["latency_ms_median"] > plan.max_latency_ms:
                record.update(
                    status="rejected",
                    error=f"latency {record['latency_ms_median']:.1f} ms > max_latency_ms {plan.max_latency_ms:g}",
                    finished_at=time.time(),
                )
                tune.report(_objective_placeholders(record, plan.objectives))
                return
        if any(o.name == "latency_pred_ms" for o in plan.objectives):
            record.update(_predicted_latency(arch, plan, hold))
        if data is not None:  # the run loaded its dataset: every trial gets the zero-cost scores
            record.update(_zero_cost(arch, data, plan, config["trial_number"], hold))
        if plan.needs_training:
            _train(arch, data, plan, config, record, hold)
        record.update(status="ok", finished_at=time.time())
        tune.report(_objective_placeholders(record, plan.objectives))
    except Exception as err:  # any failure of one architecture is data, not a crash of the search
        _fail(record, err, plan)


def _fail(record: dict[str, Any], err: Exception, plan: TrialPlan) -> None:
    """Report the trial as failed (with its error), then raise so Tune and Optuna mark it errored."""
    from archbench.errors import error_line

    record.update(status="failed", error=error_line(err), finished_at=time.time())
    record["traceback"] = traceback.format_exc(limit=8)[-4000:]
    record.setdefault("params", None)
    record.setdefault("macs", None)
    tune.report(_objective_placeholders(record, plan.objectives))
    raise TrialFailed(record["error"]) from err


def _cheap_objectives(arch: ArchSpec) -> dict[str, Any]:
    """Params and audited MACs of the full-size architecture at the space's target resolution:
    the per-layer cache's sum, and beside it the whole model counted once (so a key that misses
    a dependency shows as a mismatch in the records instead of hiding in the cache)."""
    from archbench.measure import arch_cost
    from archbench.measure.cost import full_cost

    cost = arch_cost(arch, audited=True)
    full = full_cost(arch, audited=True)
    return {"params": cost.params, "macs": cost.macs, "uncounted_ops": ",".join(cost.uncounted_ops),
            "params_full": full.params, "macs_full": full.macs}


def _predicted_latency(arch: ArchSpec, plan: TrialPlan, hold: DeviceHold) -> dict[str, Any]:
    """The latency table's prediction; layers new to the table are timed, so under the device
    lease, as whole-model latency is."""
    from archbench.measure.latency_table import predict_latency

    threads = plan.latency_threads or plan.train.threads
    with hold.exclusive():
        found = predict_latency(arch.with_input(img_size=plan.target_img_size), device=plan.train.device, threads=threads or 1)
    return {"latency_pred_ms": found.latency_pred_ms}


def _too_large(arch: ArchSpec, plan: TrialPlan) -> str | None:
    from archbench.measure.profile import too_large_to_build

    device = plan.train.device if plan.measure_latency else "cpu"  # the full-size model meets the GPU only to be timed
    return too_large_to_build(arch, img_size=plan.target_img_size, device=device)


def lease_holder(run_id: str, trial_number: int) -> str:
    return f"{run_id}:{trial_number}"


def _latency(arch: ArchSpec, plan: TrialPlan, hold: DeviceHold) -> dict[str, Any]:
    from archbench.builder import build
    from archbench.measure import measure_latency

    model = build(arch, img_size=plan.target_img_size, num_classes=plan.target_num_classes)
    threads = plan.latency_threads or plan.train.threads
    with hold.exclusive():
        lat = measure_latency(
            model, plan.target_img_size, batch_size=plan.latency_batch_size, device=plan.train.device, threads=threads, max_seconds=10.0
        )
    return {
        "latency_ms_median": lat.median,
        "latency_ms_p90": lat.p90,
        "latency_batch_size": lat.batch_size,
        "latency_device": lat.device,
        "latency_threads": lat.threads,
        "latency_dtype": lat.dtype,
        "latency_other_cores": lat.other_cores,
        "latency_contended": lat.contended,
    }


def _zero_cost(arch: ArchSpec, data: Dataset, plan: TrialPlan, trial_number: int, hold: DeviceHold) -> dict[str, Any]:
    """The zero-cost scores of the trial's proxy at initialisation, and the seconds each took.

    A failure leaves them None with the reason in ``zero_cost_error`` (``zero_cost_record``): the
    trial goes on to be trained.
    """
    from archbench.train.zero_cost import zero_cost_record

    train = plan.train.for_trial(trial_number)
    with hold.shared():
        return zero_cost_record(train.proxy_of(arch, data), data, train)


def _train(arch: ArchSpec, data: Dataset | None, plan: TrialPlan, config: dict[str, Any], record: dict[str, Any], hold: DeviceHold) -> None:
    from archbench.train import train_proxy

    assert data is not None
    proxy = plan.train.proxy_of(arch, data)

    def on_epoch(epoch: EpochResult) -> None:
        history = record.setdefault("val_acc_history", [])
        history.append(epoch.val_acc)
        record.update(
            best_val_acc=max(history),
            epochs_run=epoch.epoch,
            val_acc=epoch.val_acc,
            val_loss=epoch.val_loss,
            train_loss=epoch.train_loss,
            train_loss_sum=record.get("train_loss_sum", 0.0) + epoch.train_loss,
            train_seconds=record.get("train_seconds", 0.0) + epoch.train_seconds,
            images_per_second=epoch.images_per_second,
        )
        if epoch.epoch == epoch.epochs:
            # The last epoch's result goes out once, as the trial's final (status ok) report: a
            # scheduler stopping the trial at max_t must not see it as an unfinished (pruned) one.
            return
        # Give way between epochs to a latency measurement waiting for the device.
        hold.end_shared()
        # Tune wants every objective in every report: one taken after training (val_knn_acc) is
        # reported as its worst value until then.
        report = dict(record)
        for o in plan.objectives:
            report.setdefault(o.metric, -math.inf if o.direction == "max" else math.inf)
        tune.report(report)
        hold.begin_shared()

    with hold.shared():
        result = train_proxy(proxy, data, plan.train.for_trial(config["trial_number"]), on_epoch=on_epoch)
    record.update(result.record_fields())
