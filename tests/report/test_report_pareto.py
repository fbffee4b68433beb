"""Pareto ranks (ties, duplicates, missing values), crowding, the ranked table and the report model:
objectives from manifests, groups by sampler, latency as an objective."""
from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from archbench.report import make_report, pareto_ranks, print_leaderboard, rank
from archbench.report.pareto import crowding_distance
from archbench.objectives import parse_objectives


def test_ranks_with_ties_duplicates_and_missing_values():
    values = [
        [0.9, 2.0],  # front
        [0.9, 2.0],  # duplicate of the first: shares its rank
        [0.8, 1.0],  # front
        [0.8, 1.5],  # dominated by [0.8, 1.0] only
        [0.7, 3.0],  # dominated by rank-1 point too → rank 2
        [np.nan, 0.5],  # not comparable
    ]
    assert pareto_ranks(values, ["max", "min"]).tolist() == [0, 0, 0, 1, 2, -1]


def test_crowding_gives_boundaries_infinity_and_orders_the_middle():
    front = np.array([[0.9, 4.0], [0.85, 2.0], [0.8, 1.9], [0.6, 1.0]])
    distance = crowding_distance(front, ["max", "min"])
    # Normalised neighbour gaps summed over objectives: (0.1/0.3 + 2.1/3.0) and (0.25/0.3 + 1.0/3.0).
    assert distance.tolist() == pytest.approx([np.inf, 0.1 / 0.3 + 0.7, 0.25 / 0.3 + 1 / 3, np.inf])


def test_rank_sorts_front_first_and_leaves_failed_trials_unranked(make_run):
    from archbench.store import read_trials

    run = make_run(
        "a",
        [
            {"val_acc": 0.7, "macs": 1e9},
            {"val_acc": 0.9, "macs": 3e9},
            {"val_acc": 0.95, "macs": 2e9, "status": "failed"},
            {"val_acc": 0.6, "macs": 2e9},
        ],
    )
    ranked = rank(read_trials(run), parse_objectives("val_acc,macs"))
    assert ranked["trial_id"].tolist()[:2] in (["00000", "00001"], ["00001", "00000"])
    assert dict(zip(ranked.trial_id, ranked.pareto_rank)) == {"00000": 0, "00001": 0, "00003": 1, "00002": -1}


def test_print_leaderboard_keeps_its_signature(make_run):
    run = make_run("a", [{"val_acc": 0.7, "macs": 1e9, "params": 5_000_000}, {"val_acc": 0.9, "macs": 3e9}])
    console = Console(record=True, width=200)
    ranked = print_leaderboard([run], top=1, console=console, objectives=None)
    text = console.export_text()
    assert len(ranked) == 2 and "★" in text and "gnconv×2 · gnconv×3 · focal×9 · refiner×2" in text
    assert text.count("│ ★") == 1 and "00001" not in text  # --top 1: one row printed


def test_report_groups_by_sampler_with_hypervolume_per_run(make_run):
    good = [{"val_acc": 0.9, "macs": 1e9}, {"val_acc": 0.95, "macs": 2e9}]
    poor = [{"val_acc": 0.7, "macs": 3e9}, {"val_acc": 0.8, "macs": 4e9}]
    runs = [make_run("n0", good, sampler="nsga2"), make_run("n1", good, sampler="nsga2"), make_run("r0", poor, sampler="random")]
    report = make_report(runs, by="sampler")
    groups = {g.key: g for g in report.groups}
    assert set(groups) == {"nsga2", "random"}
    assert groups["nsga2"].runs == ("n0", "n1") and set(groups["nsga2"].hypervolume_runs) == {"n0", "n1"}
    assert groups["nsga2"].hypervolume > groups["random"].hypervolume > 0
    # Box: ideal (0.95, 1 G), reference (0.7 − 0.025, 4 G + 0.3 G); random's front (0.7,3G),(0.8,4G) by hand:
    z = lambda acc, macs: ((0.95 - acc) / 0.275, (macs - 1e9) / 3.3e9)  # noqa: E731
    (a1, b1), (a2, b2) = sorted([z(0.7, 3e9), z(0.8, 4e9)])
    by_hand = (a2 - a1) * (1 - b1) + (1 - a2) * (1 - min(b1, b2))
    assert groups["random"].hypervolume == pytest.approx(by_hand)
    assert report.box.ideal == pytest.approx((0.95, 1e9))


def test_objectives_come_from_manifests_and_disagreement_is_reported(make_run):
    a = make_run("a", [{"val_acc": 0.9, "macs": 1e9, "latency_ms_median": 5.0}], objectives=[("val_acc", "max"), ("latency_ms", "min")])
    report = make_report([a])
    assert [o.name for o in report.objectives] == ["val_acc", "latency_ms"]
    b = make_run("b", [{"val_acc": 0.8, "macs": 2e9}])
    report = make_report([a, b])
    assert [o.name for o in report.objectives] == ["val_acc"]
    assert any("runs disagree on objectives" in w for w in report.warnings)


def test_latency_objective_ranks_on_the_median(make_run):
    run = make_run(
        "lat",
        [
            {"val_acc": 0.9, "macs": 1e9, "latency_ms_median": 9.0, "latency_batch_size": 1, "latency_device": "cpu"},
            {"val_acc": 0.8, "macs": 1e9, "latency_ms_median": 3.0, "latency_batch_size": 1, "latency_device": "cpu"},
            {"val_acc": 0.7, "macs": 1e9, "latency_ms_median": 4.0, "latency_batch_size": 1, "latency_device": "cpu"},
        ],
        objectives=[("val_acc", "max"), ("latency_ms", "min")],
    )
    rows = make_report([run]).rows()
    assert {r["trial_id"]: r["pareto"] for r in rows} == {"00000": True, "00001": True, "00002": False}
    assert rows[0]["latency_ms"] in (9.0, 3.0)


def test_leaderboard_objectives_are_validated_like_the_reports(make_run):
    """print_leaderboard's objectives come from the manifest through the same check as the report's:
    names archbench does not know are dropped, and a manifest with none known gives the default pair."""
    from archbench.report.leaderboard import run_objectives

    mixed = make_run("mixed", [{"val_acc": 0.9, "macs": 1e9}], objectives=[("val_acc", "max"), ("zero_cost", "max")])
    assert [(o.name, o.direction) for o in run_objectives(mixed)] == [("val_acc", "max")]
    unknown = make_run("unknown", [{"val_acc": 0.9, "macs": 1e9}], objectives=[("zero_cost", "max")])
    assert run_objectives(unknown) == parse_objectives("val_acc:max,macs:min")
    bare = make_run("bare", [{"val_acc": 0.9, "macs": 1e9}], manifest=False)
    assert run_objectives(bare) == parse_objectives("val_acc:max,macs:min")
