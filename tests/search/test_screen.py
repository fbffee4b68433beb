"""Screen then train (`archbench search --screen N`): the pool is drawn as the sampler draws, costed
exactly, ranked by non-dominated sorting with a zero-cost score for val_acc, and its best are
enqueued into the study so they train first; the pool is kept in the run folder and reported."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from search_helpers import TINY_SPACE, read_run, search

from archbench import space as spaces
from archbench.errors import UserError
from archbench.measure.cost import full_cost
from archbench.pareto import pareto_ranks
from archbench.search.options import SearchOptions
from archbench.search.screen import SCREEN_ATTR, _enqueue, screen_pool
from archbench.spec import ArchSpec
from archbench.train import TrainConfig


def _options(**changes) -> SearchOptions:
    base = SearchOptions(space=str(TINY_SPACE), trials=3, screen=16,
                         train=TrainConfig(dataset="digits", epochs=1, batch_size=64, proxy_img_size=32, proxy_width_mult=1.0,
                                           proxy_depth_mult=1.0, seed=0, train_images=256))
    return base.changed(**changes)


def test_the_pool_is_ranked_on_exact_costs_and_its_best_are_enqueued(tmp_path: Path):
    options = _options(objectives="params:min,macs:min")  # cost only: no data needed
    sp = spaces.load(options.space)
    pool = screen_pool(sp, options, None)
    assert len(pool) == 16 and pool["chosen"].sum() == 3
    feasible = pool[pool["violation"].isna()]
    for row in feasible.head(4).itertuples():  # exact: the whole model counted gives the same
        full = full_cost(ArchSpec.from_dict(json.loads(row.arch_json)))
        assert (row.params, row.macs) == (full.params, full.macs)
    ranks = pareto_ranks(feasible[["params", "macs"]].to_numpy(float), ["min", "min"])
    assert (feasible["front"].to_numpy() == ranks).all()
    chosen = pool[pool["chosen"]].sort_values("screen_rank")
    assert chosen["front"].max() <= feasible.loc[~feasible["chosen"], "front"].min()  # no better candidate left out

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert _enqueue(storage, pool, options) == 3
    assert _enqueue(storage, pool, options) == 0  # a resume does not queue them twice
    study = optuna.load_study(study_name="archbench", storage=storage)
    drawn = []
    for _ in range(3):  # the study hands out the queued candidates first, as the search's trials
        trial = study.ask()
        drawn.append((trial.user_attrs[SCREEN_ATTR], sp.suggest(trial).hash))
    assert drawn == list(zip(range(3), chosen["arch_hash"]))


def test_val_acc_is_ranked_by_the_chosen_zero_cost_score():
    options = _options(screen=8, trials=2, screen_signal="nwot")
    data = options.train.load_dataset()
    pool = screen_pool(spaces.load(options.space), options, data)
    feasible = pool[pool["violation"].isna()]
    assert "nwot" in pool and feasible["nwot"].notna().all() and "synflow" not in pool
    ranks = pareto_ranks(feasible[["nwot", "macs"]].to_numpy(float), ["max", "min"])
    assert (feasible["front"].to_numpy() == ranks).all() and pool["chosen"].sum() == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"screen": 2, "trials": 3}, "--screen 2 must be at least --trials 3"),
        ({"screen_signal": "accuracy"}, "--screen-signal must be one of synflow, nwot, grad_norm, snip"),
        ({"objectives": "val_acc:max,latency_ms:min"}, "latency_ms is measured per trial, not screened"),
        ({"screen": 100000}, "--screen must be between 0 and 10000"),
    ],
)
def test_screening_that_cannot_rank_is_refused_before_anything_starts(changes, message):
    with pytest.raises(UserError, match=message):
        _options(**changes)


@pytest.mark.slow
def test_a_screened_search_trains_the_pools_best_resumes_and_reports_them(ray_local, tmp_path: Path, capsys):
    from archbench.cli import main

    run = tmp_path / "run"
    options = _options(run_dir=str(run), concurrency=2, trials=2, screen=12)
    outcome = search(options)
    assert outcome.counts == {"ok": 2}
    pool = pd.read_parquet(run / "screen_pool.parquet")
    chosen = pool[pool["chosen"]].sort_values("screen_rank")
    df = read_run(run)
    assert sorted(df["arch_hash"]) == sorted(chosen["arch_hash"])  # the trained trials are the pool's best
    assert (df["macs"] == df["macs_full"]).all() and (df["params"] == df["params_full"]).all()
    # Resume for one more trial: the pool is not drawn again, the queue not refilled.
    mtime = (run / "screen_pool.parquet").stat().st_mtime_ns
    assert main(["search", "--resume", "--run-dir", str(run), "--trials", "3", "--no-live"]) == 0
    assert (run / "screen_pool.parquet").stat().st_mtime_ns == mtime and len(read_run(run)) == 3
    capsys.readouterr()
    assert main(["report", str(run), "--format", "md", "--plot", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "screened pool of" in out and "12 candidates drawn" in out and "2 trained" in out


def test_max_latency_ms_screens_the_pool_and_the_sampler_by_the_latency_tables_prediction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from archbench.measure import layer_cost
    from archbench.space import SpaceInfeasible

    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path))  # a latency table of the test's own
    layer_cost.reset_store(None)
    try:
        options = _options(objectives="params:min,macs:min", screen=6, trials=2)
        sp = spaces.load(options.space)
        loose = screen_pool(sp.with_constraints(max_latency_ms=1e9), options, None)
        predicted = loose["latency_pred_ms"].dropna()
        assert len(predicted) >= 4 and (predicted > 0).all() and not loose["violation"].fillna("").str.contains("latency").any()
        bound = float(predicted.median())  # the table is warm now: the same layers give the same sums
        tight = screen_pool(sp.with_constraints(max_latency_ms=bound), options, None)
        over = tight["latency_pred_ms"] > bound
        assert over.any() and tight.loc[over, "violation"].str.startswith("predicted latency").all()
        assert tight.loc[~over & tight["latency_pred_ms"].notna(), "violation"].isna().all()
        with pytest.raises(SpaceInfeasible, match="max_latency_ms"):
            sp.with_constraints(max_latency_ms=1e-6).sample(0, max_checks=3)
    finally:
        layer_cost.reset_store(None)
