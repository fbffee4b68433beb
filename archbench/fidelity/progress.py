"""The fidelity study's progress in the terminal (rich): planning steps, then counts per fidelity,
elapsed and estimated time, and the latest evaluations; one line per evaluation off a terminal.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table

from archbench._live import LiveView

if TYPE_CHECKING:
    from archbench.store import TrialRecord

_SHOWN = 8  # latest evaluations in the live table


class FidelityProgress(LiveView):
    """Live view of one study; ``add`` takes each record as its part is written."""

    def __init__(
        self, run_dir: Path, *, total: int, already: dict[str, str] | None = None, live: bool = True, quiet: bool = False, console: Console | None = None
    ) -> None:
        self.run_dir = run_dir
        self.total = total
        self.console = console or Console(file=sys.stdout)
        self.quiet = quiet
        self.interactive = live and not quiet and self.console.is_terminal
        self.counts: dict[str, int] = {}
        for status in (already or {}).values():
            self.counts[status] = self.counts.get(status, 0) + 1
        self.previous = sum(self.counts.values())
        self.by_fidelity: dict[str, int] = {}
        self.records: list[TrialRecord] = []
        self.started = time.monotonic()
        self._stage: str | None = None

    def planning(self, stage: str, done: int, total: int) -> None:
        """Report a planning step (``drawing`` the pool, ``counting`` the chosen architectures)."""
        if self.quiet:
            return
        if self.interactive:
            self.console.print(f"{stage} {done}/{total}", end="\r", highlight=False)
        if done == total and stage != self._stage:
            self._stage = stage
            self.console.print(f"{stage}: {total} architectures ({time.monotonic() - self.started:.0f}s)", highlight=False)

    def __enter__(self) -> FidelityProgress:
        self.started = time.monotonic()  # the planning is done: the rate is the evaluations'
        super().__enter__()
        return self

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, record: TrialRecord) -> None:
        self.counts[record.status] = self.counts.get(record.status, 0) + 1
        self.by_fidelity[record.fidelity or "?"] = self.by_fidelity.get(record.fidelity or "?", 0) + 1
        self.records.append(record)
        if self.drawing:
            self.refresh()
        elif not self.quiet:
            self.console.print(f"[{self.done}/{self.total}] {self._line(record)}", highlight=False, soft_wrap=True)

    @staticmethod
    def _line(record: TrialRecord) -> str:
        acc = f"val_acc {record.val_acc:.3f}" if record.val_acc is not None else ""
        secs = f"{record.train_seconds:.0f}s" if record.train_seconds is not None else ""
        note = f"({record.error})" if record.error else ""
        return " ".join(p for p in (record.trial_id, f"{record.status:<7}", acc, secs, record.arch_summary or "", note) if p)

    def render(self) -> Group:
        elapsed = time.monotonic() - self.started
        new = self.done - self.previous
        eta = f"{elapsed / new * (self.total - self.done):.0f}s" if 0 < new and self.done < self.total else "–"
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]{self.run_dir}[/]",
            f"done {self.done}/{self.total}",
            "  ".join(f"{k} {v}" for k, v in sorted(self.by_fidelity.items())),
            "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items())),
            f"elapsed {elapsed:.0f}s",
            f"eta {eta}",
        )
        latest = Table(title="latest evaluations", show_edge=False)
        for col in ("evaluation", "status", "val_acc", "train s", "architecture"):
            latest.add_column(col)
        for r in self.records[-_SHOWN:]:
            latest.add_row(
                r.trial_id, r.status, "–" if r.val_acc is None else f"{r.val_acc:.3f}",
                "–" if r.train_seconds is None else f"{r.train_seconds:.0f}", r.arch_summary or "",
            )
        return Group(head, latest)


__all__ = ["FidelityProgress"]
