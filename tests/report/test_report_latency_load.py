"""A latency measured while other processes competed for the CPU is marked in every output and
named in the report's warnings (issue 12)."""
from __future__ import annotations

from archbench.report.leaderboard import display_rows
from archbench.report.summary import make_report


def test_reports_mark_a_contended_latency_and_say_so(make_run) -> None:
    run = make_run(
        "busy",
        objectives=(("val_acc", "max"), ("latency_ms", "min")),
        trials=[
            {"val_acc": 0.9, "macs": int(1e9), "params": int(5e6), "latency_ms_median": 12.5, "latency_batch_size": 1, "latency_device": "cpu", "latency_other_cores": 1.4, "latency_contended": True},
            {"val_acc": 0.8, "macs": int(5e8), "params": int(3e6), "latency_ms_median": 6.0, "latency_batch_size": 1, "latency_device": "cpu", "latency_other_cores": 0.1, "latency_contended": False},
        ],
    )
    report = make_report([run])
    shown = {row["trial"]: row["latency (ms)"] for row in display_rows(report.table)}
    assert shown == {"00000": "12.5 (b1, cpu, contended)", "00001": "6.0 (b1, cpu)"}
    assert report.warnings == [
        "busy: 1 latency figure(s) measured while other processes kept up to 1.4 cores busy (marked 'contended'): re-measure them on an idle machine before comparing"
    ]
    by_id = {r["trial_id"]: r for r in report.rows()}  # JSON: the figure and its conditions side by side
    assert (by_id["00000"]["latency_ms"], by_id["00000"]["latency_contended"]) == (12.5, True)
    assert (by_id["00001"]["latency_ms"], by_id["00001"]["latency_contended"]) == (6.0, False)
