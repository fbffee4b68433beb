"""Bounding a search: a concurrency limiter that also stops proposing trials after a time budget,
so running trials finish and no new ones start (Tune's own time budget would kill them).
"""
from __future__ import annotations

import time
from typing import Any

from ray.tune.search import ConcurrencyLimiter, Searcher


class BudgetedLimiter(ConcurrencyLimiter):
    """``ConcurrencyLimiter`` whose ``suggest`` answers FINISHED once ``deadline`` (monotonic) passed."""

    def __init__(self, searcher: Searcher, max_concurrent: int, deadline: float | None = None) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.deadline = deadline
        self.budget_reached = False

    def suggest(self, trial_id: str) -> Any:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.budget_reached = True
            return Searcher.FINISHED
        return super().suggest(trial_id)
