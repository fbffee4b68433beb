"""Pareto ranking for reports: a re-export of :mod:`archbench.pareto`, kept so that code importing
``archbench.report.pareto`` goes on working (the ranking itself lives below search and report).
"""
from __future__ import annotations

from archbench.pareto import crowding_distance, pareto_ranks

__all__ = ["crowding_distance", "pareto_ranks"]
