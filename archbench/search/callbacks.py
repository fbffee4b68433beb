"""Driver-side Tune callbacks: the part writer (one atomic Parquet part per ended trial, whatever
ended it) and the live progress view (counts, time, the current front) drawn with rich.
"""
from __future__ import annotations

import json
import math
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ray.tune import Callback
from rich.console import Console, Group
from rich.table import Table

from archbench.objectives import KNOWN, ZERO_COST_COLUMNS
from archbench._live import LiveView
from archbench.store import TrialRecord, write_trial

if TYPE_CHECKING:
    from archbench.search.options import SearchOptions
    from archbench.space import Space
    from archbench.store.run import Manifest

# Keys of a trial's report that are TrialRecord columns under the same name.
_DIRECT = (
    "params", "macs", "latency_ms_median", "latency_ms_p90", "latency_batch_size", "latency_device",
    "latency_threads", "latency_dtype", "latency_other_cores", "latency_contended", "val_acc", "val_loss", "best_val_acc", "val_acc_history",
    "epochs_run", "train_seconds", "images_per_second", "train_peak_memory_mb", "train_device", "proxy_params",
    "train_loss_sum", "val_knn_acc", "val_knn_acc_init", "mix_rule", *ZERO_COST_COLUMNS, "params_full", "macs_full", "latency_pred_ms",
)
_EXTRA = ("train_loss", "uncounted_ops", "traceback", "trial_number", "lease_windows", "zero_cost_error")


def trial_id_of(number: int) -> str:
    return f"{int(number):05d}"


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class PartWriter(Callback):
    """Writes ``trials/part-<trial_id>.parquet`` when a trial completes, errors, or is left unfinished."""

    def __init__(self, run_dir: Path, options: SearchOptions, manifest: Manifest, space: Space) -> None:
        self.run_dir = run_dir
        self.options = options
        self.manifest = manifest
        self.space_name = space.name
        self.live: dict[str, Any] = {}
        self.written: list[TrialRecord] = []
        self.release_holder: Callable[[str], None] | None = None
        self.on_record: Callable[[TrialRecord], None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with Tune's experiment state: live trials and hooks into the driver stay behind.
        return {k: v for k, v in self.__dict__.items() if k not in ("live", "release_holder", "on_record")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, live={}, release_holder=None, on_record=None)

    # ---- Tune hooks ------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.live[trial.trial_id] = trial

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # A trial drawn but still waiting for a worker is as cut off by a Ctrl-C as a running one:
        # both get an interrupted record, whenever in a trial's start the signal lands.
        for trial in trials:
            if trial.status == "PENDING" and (trial.config or {}).get("trial_number") is not None:
                self.live.setdefault(trial.trial_id, trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        status = result.get("status", "running")
        if status == "running":  # stopped by the scheduler between epochs
            status = "pruned"
        self._write(trial, result, status)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = dict(trial.last_result or {})
        if result.get("status") != "failed":
            result["error"] = self._error_text(trial)
        self._write(trial, result, "failed")

    # ---- driver side -----------------------------------------------------------------------
    def record_unfinished(self) -> int:
        """Trials still running when the search stopped (Ctrl-C): recorded as interrupted."""
        unfinished = list(self.live.values())
        for trial in unfinished:
            result = dict(trial.last_result or {})
            started = trial.status != "PENDING"
            result["error"] = result.get("error") or f"interrupted before the trial {'finished' if started else 'started'}"
            self._write(trial, result, "interrupted")
        return len(unfinished)

    def _write(self, trial: Any, result: dict[str, Any], status: str) -> None:
        self.live.pop(trial.trial_id, None)
        config = trial.config or {}
        number = result.get("trial_number", config.get("trial_number"))
        if number is None:
            return  # a trial that never got an architecture (the searcher finished first)
        record = self.record_from(result, config, status)
        write_trial(self.run_dir, record, overwrite=status != "interrupted")
        self.written.append(record)
        if self.release_holder is not None:
            self.release_holder(f"{self.manifest.run_id}:{number}")
        if self.on_record is not None:
            self.on_record(record)

    def record_from(self, result: dict[str, Any], config: dict[str, Any], status: str) -> TrialRecord:
        from archbench.spec import ArchSpec
        from archbench.store import arch_fields

        number = result.get("trial_number", config.get("trial_number"))
        fields: dict[str, Any] = {}
        if config.get("arch"):  # None when the space could not produce an architecture
            fields.update(arch_fields(ArchSpec.from_dict(config["arch"])))
        for key in _DIRECT:
            if key in result and result[key] is not None:
                fields[key] = _finite(result[key])
        if status == "rejected" or not result.get("epochs_run"):
            # The 0.0 Optuna needed as a number is no accuracy: no epoch ever ran (nothing was
            # trained, or the trial stopped before its first epoch ended).
            fields.pop("val_acc", None)
            fields.pop("val_loss", None)
        extra = {k: result[k] for k in _EXTRA if k in result}
        opts = self.options
        return TrialRecord(
            run=self.run_dir.name,
            trial_id=trial_id_of(number),
            status=status,
            error=result.get("error") or None,
            **opts.train.for_trial(number).record_fields(),
            started_at=_timestamp(result.get("started_at")),
            finished_at=_timestamp(result.get("finished_at")) or datetime.now(timezone.utc),
            sampler=opts.sampler,
            space=self.space_name,
            hostname=result.get("hostname") or socket.gethostname(),
            extra_json=json.dumps(extra, default=str) if extra else None,
            **fields,
        )

    @staticmethod
    def _error_text(trial: Any) -> str:
        for attr in ("error_file", "error_filename"):
            path = getattr(trial, attr, None)
            if path and Path(path).is_file():
                lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
                if lines:
                    return lines[-1][:500]
        message = getattr(trial, "error_msg", None)
        return str(message)[:500] if message else "the trial's worker died without a report"


class ProgressView(LiveView, Callback):
    """Counts, elapsed and estimated time, and the current front, live in the terminal.

    On a terminal (and ``live``) it redraws in place; otherwise (``--no-live``, logs, CI) it prints
    one line per ended trial; ``quiet`` prints nothing.
    """

    def __init__(
        self,
        options: SearchOptions,
        run_dir: Path,
        *,
        already: dict[str, str],
        live: bool = True,
        quiet: bool = False,
        console: Console | None = None,
    ) -> None:
        self.options = options
        self.run_dir = run_dir
        self.console = console or Console(file=sys.stdout)
        self.interactive = live and not quiet and self.console.is_terminal
        self.quiet = quiet
        self.counts: dict[str, int] = {}
        for status in already.values():
            self.counts[status] = self.counts.get(status, 0) + 1
        self.previous = sum(v for k, v in self.counts.items() if k != "interrupted")
        self.running: set[str] = set()
        self.records: list[TrialRecord] = []
        self.started = time.monotonic()
        self._live = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; a terminal handle does not pickle.
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "_live")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, console=Console(file=sys.stdout), _live=None)

    def add(self, record: TrialRecord) -> None:
        self.counts[record.status] = self.counts.get(record.status, 0) + 1
        self.records.append(record)
        if self.drawing:
            self.refresh()
        elif not self.quiet:
            acc = f"val_acc {record.val_acc:.3f}" if record.val_acc is not None else ""
            macs = (f"{record.macs / 1e9:.2f} GMACs" if record.macs >= 1e8 else f"{record.macs / 1e6:.2f} MMACs") if record.macs else ""
            note = f"({record.error})" if record.error and record.status != "ok" else ""
            done = sum(v for k, v in self.counts.items() if k != "interrupted")
            self.console.print(f"[{done}/{self.options.trials}] trial {record.trial_id} {record.status:<8} {acc} {macs} {record.arch_summary or ''} {note}".rstrip(), highlight=False, soft_wrap=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)  # Tune's id: the record's trial_id is not known yet
        self.refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.refresh()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial, **info)

    def render(self) -> Group:
        from archbench.pareto import pareto_ranks

        done = sum(v for k, v in self.counts.items() if k != "interrupted")
        elapsed = time.monotonic() - self.started
        new = done - self.previous
        eta = "–"
        if new > 0 and done < self.options.trials:
            eta = f"{elapsed / new * (self.options.trials - done):.0f}s"
        summary = Table.grid(padding=(0, 2))
        summary.add_row(
            f"[bold]{self.run_dir}[/]",
            f"done {done}/{self.options.trials}",
            f"running {len(self.running)}",
            "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
            f"elapsed {elapsed:.0f}s",
            f"eta {eta}",
        )
        # The front over the run's own objectives, best first in the first of them.
        objectives = self.options.objectives
        caption = ", ".join(f"{KNOWN[o.name].label} {'↑' if o.direction == 'max' else '↓'}" for o in objectives)
        front = Table(title=f"current front ({caption})", show_edge=False)
        for col in ("trial", *(KNOWN[o.name].label for o in objectives), "architecture"):
            front.add_column(col)
        ok = [(r, [getattr(r, o.metric) for o in objectives]) for r in self.records if r.status == "ok"]
        ok = [(r, values) for r, values in ok if None not in values]
        if ok:
            ranks = pareto_ranks([values for _, values in ok], [o.direction for o in objectives])
            sign = 1.0 if objectives[0].direction == "min" else -1.0
            best = sorted(((r, values) for (r, values), k in zip(ok, ranks) if k == 0), key=lambda item: sign * item[1][0])
            for r, values in best[:8]:
                front.add_row(r.trial_id, *(o.show(v) for o, v in zip(objectives, values)), r.arch_summary or "")
        return Group(summary, front)
