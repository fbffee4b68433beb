"""Searches end to end on a real local Ray and a real Optuna SQLite study (the tiny test space, one
epoch): the run folder, failures and rejections as data, seeded reproducibility, ASHA, the time
budget, and the latency objective timed under the device lease."""
from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from archbench import space as spaces
from archbench.objectives import parse_objectives
from archbench.spec import ArchSpec
from search_helpers import TINY_SPACE, read_run, search

pytestmark = pytest.mark.slow  # each starts Ray trials (a shared local Ray), 5-40 s


def study_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="archbench", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def test_a_tiny_search_end_to_end(ray_local, tiny_options, capsys):
    options = tiny_options(trials=3)
    outcome = search(options)

    run = Path(options.run_dir)
    assert outcome.counts == {"ok": 3} and not outcome.interrupted and not outcome.stopped_by_budget
    df = pd.read_parquet(run / "trials")  # any Parquet reader takes the folder as one table
    assert sorted(df["trial_id"]) == ["00000", "00001", "00002"]
    assert (df["status"] == "ok").all() and (df["epochs_run"] == 1).all()
    assert df["val_acc"].between(0, 1).all() and (df["macs"] > 0).all() and (df["params"] > 0).all()
    assert (df["dataset"] == "digits").all() and (df["space"] == "tiny_search").all()
    assert all(len(h) == 1 for h in df["val_acc_history"])
    # Zero-cost scores of each proxy at initialisation, what each took, and the sum of the losses.
    scores = ["synflow", "nwot", "grad_norm", "snip"]
    assert df[scores + [f"{s}_seconds" for s in scores] + ["train_loss_sum"]].notna().all().all()
    assert (df[[f"{s}_seconds" for s in scores]] > 0).all().all() and (df["grad_norm"] > 0).all()
    assert (df["train_loss_sum"] > 0).all()  # one epoch: its mean training loss
    space = spaces.load(str(TINY_SPACE))
    for text, digest in zip(df["arch_json"], df["arch_hash"]):
        arch = ArchSpec.from_dict(json.loads(text))
        assert arch.hash == digest and space.contains(arch)

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"].startswith("pytest") and manifest["options"]["trials"] == 3
    assert manifest["space"]["hash"] == space.hash == spaces.load(str(run / "space.yaml")).hash
    assert manifest["seed"] == 0 and manifest["schema_version"] >= 1
    assert {"torch", "ray", "optuna", "timm", "python"} <= set(manifest["versions"])
    assert manifest["hardware"]["cpu"] and "gpus" in manifest["hardware"]
    assert "lease" in manifest["latency_isolation"]

    # The Optuna study (what a resume continues) holds the same trials, told complete.
    trials = study_trials(run)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    by_number = {f"{t.number:05d}": t.user_attrs["arch_hash"] for t in trials}
    assert by_number == dict(zip(df["trial_id"], df["arch_hash"]))
    study = optuna.load_study(study_name="archbench", storage=f"sqlite:///{run / 'optuna.db'}")
    assert study.metric_names == [o.metric for o in options.objectives]  # labels for optuna-dashboard
    assert (run / "ray.log").is_file() and not list((run / "trials").glob(".*.tmp"))

    out, err = capsys.readouterr()
    assert out.count(" ok ") == 3 and "[3/3]" in out  # one line per trial with --no-live
    assert err == ""


def test_a_search_on_zero_cost_scores_trains_nothing(ray_local, tiny_options, capsys):
    """synflow and MACs: every trial scores its proxy at initialisation, none is trained, Optuna
    is told the scores, and the report ranks on them."""
    from archbench.cli import main

    options = tiny_options(trials=2, objectives=parse_objectives("synflow:max,macs:min"))
    outcome = search(options)

    assert outcome.counts == {"ok": 2}
    df = read_run(options.run_dir)
    assert df["synflow"].notna().all() and (df["synflow"] >= 0).all() and df["nwot"].notna().all()
    assert df["val_acc"].isna().all() and df["val_loss"].isna().all() and (df["epochs_run"] == 0).all()
    assert df["train_seconds"].isna().all() and df["train_loss_sum"].isna().all() and df["proxy_params"].isna().all()
    trials = study_trials(Path(options.run_dir))
    assert sorted(t.values[0] for t in trials) == sorted(df["synflow"])
    capsys.readouterr()
    assert main(["report", options.run_dir, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["trial_id"]: r["synflow"] for r in rows} == dict(zip(df["trial_id"], df["synflow"]))
    assert any(r["pareto"] for r in rows)


def test_a_diverging_trial_is_recorded_failed(ray_local, tiny_options):
    """An absurd learning rate makes the loss NaN: the trial is data (failed, with the reason),
    the search goes on, and Optuna marks it failed so samplers ignore it."""
    options = tiny_options(trials=2, lr=1e6)
    outcome = search(options)

    assert outcome.counts == {"failed": 2}
    df = read_run(options.run_dir)
    assert (df["status"] == "failed").all()
    assert df["error"].str.contains("TrainingDiverged").all() and df["error"].str.contains("nan").all()
    assert df["val_acc"].isna().all()  # no epoch finished: no accuracy, not 0.0
    assert (df["macs"] > 0).all()  # what was measured before the failure is kept
    assert all("Traceback" in json.loads(extra)["traceback"] for extra in df["extra_json"])
    assert [t.state for t in study_trials(Path(options.run_dir))] == [optuna.trial.TrialState.FAIL] * 2


def test_constraint_violations_are_rejected_without_training(ray_local, tiny_options):
    options = tiny_options(trials=4, max_macs=600e3)
    outcome = search(options)

    df = read_run(options.run_dir)
    assert len(df) == 4 and set(df["status"]) <= {"ok", "rejected"}
    rejected = df[df["status"] == "rejected"]
    assert len(rejected) >= 1, "600k MACs admits ~15% of the tiny space: some trial must be rejected"
    assert rejected["error"].str.contains("exceeds max_macs").all()
    assert (rejected["macs"] > 600e3).all()  # the audited count agrees with the reason
    assert (rejected["epochs_run"] == 0).all() and rejected["train_seconds"].isna().all() and rejected["val_acc"].isna().all()
    assert (df.loc[df["status"] == "ok", "macs"] <= 600e3).all()
    assert sum(outcome.counts.values()) == 4


def test_a_model_too_large_for_the_machine_is_rejected_before_it_is_built(ray_local, tiny_options, repo):
    """A space of one architecture (a file) whose every key is within bounds but whose whole is
    35 T parameters: the trial is rejected from its meta count, the worker allocates nothing."""
    huge = repo / "tests" / "fixtures" / "bad_inputs" / "architectures" / "huge_model.yaml"
    options = tiny_options(trials=1, space=str(huge), objectives=parse_objectives("params:min"))
    outcome = search(options)

    df = read_run(options.run_dir)
    assert outcome.counts == {"rejected": 1} and list(df["status"]) == ["rejected"]
    assert df["error"][0].startswith("35.2 T parameters (141 TB of float32 weights) cannot be built on this machine (")
    assert df["params"].isna().all() and df["latency_ms_median"].isna().all()  # nothing was built to count or time


def test_the_same_seed_samples_the_same_architectures(ray_local, tiny_options, tmp_path):
    """With one trial at a time, the seeded sampler proposes the same sequence (TPE past its
    random start-up trials, so the model-based part is covered too)."""
    common = dict(trials=6, concurrency=1, sampler="tpe", objectives=parse_objectives("macs:min,params:min"))
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        options = tiny_options(run_dir=str(tmp_path / name), seed=seed, **common)
        assert search(options).counts == {"ok": 6}
        runs.append(read_run(options.run_dir).set_index("trial_id")["arch_hash"].to_dict())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # the seed matters (so the equality above is not vacuous)
    assert len(set(runs[0].values())) >= 3


def test_asha_prunes_on_accuracy(ray_local, tiny_options):
    """One trial at a time: each later trial worse than the median at epoch 1 or 2 is stopped.
    Finished trials must have every epoch (the last report is the final one, not a pruned one)."""
    options = tiny_options(trials=5, epochs=3, concurrency=1, scheduler="asha")
    outcome = search(options)

    df = read_run(options.run_dir)
    assert len(df) == 5 and set(df["status"]) <= {"ok", "pruned"}
    ok, pruned = df[df["status"] == "ok"], df[df["status"] == "pruned"]
    assert (ok["epochs_run"] == 3).all() and all(len(h) == 3 for h in ok["val_acc_history"])
    assert len(ok) >= 1 and ok["proxy_params"].notna().all()
    assert (pruned["epochs_run"] < 3).all() and (pruned["epochs_run"] >= 1).all()
    assert len(pruned) >= 1, f"ASHA pruned nothing: {df[['trial_id', 'epochs_run', 'val_acc_history']]}"
    assert outcome.counts.get("pruned", 0) == len(pruned)


def test_the_time_budget_stops_new_trials(ray_local, tiny_options):
    options = tiny_options(trials=40, concurrency=1, time_budget_min=0.1, objectives=parse_objectives("macs:min"))
    outcome = search(options)

    df = read_run(options.run_dir)
    assert outcome.stopped_by_budget and not outcome.interrupted
    assert 1 <= len(df) < 40 and (df["status"] == "ok").all()
    assert outcome.elapsed_s < 6 + 60  # the budget plus the trial that was running, with slack


def test_latency_is_timed_alone(ray_local, tiny_options):
    """latency_ms objective: every trial is timed under the exclusive lease, and no trial's timing
    window overlaps another trial's window of work under the shared lease."""
    options = tiny_options(trials=3, epochs=2, objectives=parse_objectives("val_acc:max,latency_ms:min"))
    outcome = search(options)

    assert outcome.counts == {"ok": 3}
    df = read_run(options.run_dir)
    assert (df["latency_ms_median"] > 0).all() and df["latency_ms_median"].map(math.isfinite).all()
    assert (df["latency_ms_p90"] >= df["latency_ms_median"]).all()
    assert (df["latency_device"] == "cpu").all() and (df["latency_batch_size"] == 1).all() and (df["latency_threads"] == 1).all()

    windows = {row.trial_id: json.loads(row.extra_json)["lease_windows"] for row in df.itertuples()}
    for trial_id, held in windows.items():
        kinds = [kind for kind, _, _ in held]
        assert kinds.count("exclusive") == 1 and kinds.count("shared") >= 3  # counting, then 2 epochs
    for trial_id, held in windows.items():
        (timed,) = [(start, end) for kind, start, end in held if kind == "exclusive"]
        for other, other_held in windows.items():
            for kind, start, end in other_held:
                if other != trial_id or kind == "exclusive":
                    if (other, kind) != (trial_id, "exclusive"):
                        assert end <= timed[0] or start >= timed[1], f"{other} {kind} overlaps the timing of {trial_id}"

    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert not [n for n in names if n.startswith("archbench-lease-")]  # the run's leases are gone


def test_resume_of_a_finished_run_adds_only_what_is_asked(ray_local, tiny_options, capsys):
    from archbench.cli import main

    options = tiny_options(trials=1)
    search(options)
    run = Path(options.run_dir)
    parts = sorted(p.name for p in (run / "trials").iterdir())
    capsys.readouterr()

    assert main(["search", "--resume", "--run-dir", str(run), "--no-live"]) == 0  # nothing missing
    out, err = capsys.readouterr()
    assert sorted(p.name for p in (run / "trials").iterdir()) == parts and "ok 1" in out and err == ""

    assert main(["search", "--resume", "--run-dir", str(run), "--trials", "2", "--no-live"]) == 0
    df = read_run(run)
    assert list(df["trial_id"]) == ["00000", "00001"] and (df["status"] == "ok").all()
    assert json.loads((run / "manifest.json").read_text())["options"]["trials"] == 2


def test_the_shipped_tiny_cpu_space(ray_local, tiny_options):
    """The shipped space meant for quick CPU runs searches cleanly with the default proxy settings."""
    from dataclasses import replace

    from archbench.search.options import SearchOptions

    defaults = SearchOptions().train
    tiny = tiny_options(trials=4, space="tiny_cpu")
    options = replace(
        tiny,
        train=replace(
            tiny.train,
            proxy_width_mult=defaults.proxy_width_mult,
            proxy_depth_mult=defaults.proxy_depth_mult,
            batch_size=defaults.batch_size,
        ),
    )
    outcome = search(options)
    df = read_run(options.run_dir)
    assert len(df) == 4 and set(df["status"]) <= {"ok", "rejected"} and outcome.counts.get("ok", 0) >= 2
    assert (df.loc[df["status"] == "ok", "params"] <= 2e6).all()  # tiny_cpu's max_params


@pytest.mark.parametrize("sampler", ["nsga2", "random", "gp"])
def test_every_sampler_searches_the_conditional_space(ray_local, tiny_options, sampler):
    """Each --sampler drives define-by-run sampling of conditional parameters to completion, and the
    study records which sampler ran (samplers that cannot model a parameter fall back to independent
    sampling for it rather than failing)."""
    options = tiny_options(trials=3, sampler=sampler)
    outcome = search(options)
    assert sum(outcome.counts.values()) == 3 and outcome.counts.get("ok", 0) >= 1
    df = read_run(options.run_dir)
    assert (df["sampler"] == sampler).all() and df["trial_id"].is_unique
