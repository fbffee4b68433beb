"""Reading runs: Pareto ranks, hypervolume, leaderboards, plots and exports.

``make_report(run_dirs)`` gives a Report; ``export`` renders it (table, md, csv, json, html) and
``plot.save_plot`` draws it. ``archbench report`` is a thin layer over these.
"""
from __future__ import annotations

from archbench.pareto import crowding_distance, pareto_ranks
from archbench.report.hypervolume import Box, box_from_data, hypervolume, parse_bounds
from archbench.report.leaderboard import print_leaderboard, rank
from archbench.report.runs import LoadedRuns, RunInfo, load_runs
from archbench.report.summary import GroupSummary, Report, make_report
from archbench.report.zoo_anchors import ZooAnchor, measure_anchors

__all__ = [
    "Box",
    "GroupSummary",
    "LoadedRuns",
    "Report",
    "RunInfo",
    "ZooAnchor",
    "box_from_data",
    "crowding_distance",
    "hypervolume",
    "load_runs",
    "make_report",
    "measure_anchors",
    "parse_bounds",
    "pareto_ranks",
    "print_leaderboard",
    "rank",
]
