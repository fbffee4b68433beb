"""The fidelity study end to end on the tiny test space: its plan (stratified, deterministic, stored),
its options, a real run on the shared Ray with its report in every format, and resume after kill -9."""
from __future__ import annotations

import json
import signal
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from search_helpers import TINY_SPACE, wait_for_exit

from archbench.cli import main
from archbench.errors import UserError
from archbench.fidelity.options import REFERENCE_CHANGES, FidelityOptions
from archbench.fidelity.plan import PROXY, REFERENCE, FidelityPlan, draw_architectures, make_plan
from archbench.train.config import TrainConfig

TINY_PROXY = TrainConfig(dataset="digits", epochs=1, batch_size=128, proxy_img_size=16, proxy_width_mult=1.0, proxy_depth_mult=1.0)
TINY_FLAGS = (
    "--space", str(TINY_SPACE), "--archs", "4", "--seeds", "2", "--pool", "2", "--dataset", "digits", "--epochs", "1",
    "--batch-size", "128", "--proxy-img-size", "16", "--proxy-width-mult", "1", "--proxy-depth-mult", "1",
    "--reference", "epochs=2,proxy_width_mult=1", "--no-live",
)


def tiny_options(run_dir: Path, **changes) -> FidelityOptions:
    options = FidelityOptions(space=str(TINY_SPACE), archs=4, seeds=2, pool=2, proxy=TINY_PROXY, run_dir=str(run_dir), concurrency=2)
    return replace(options, **changes).with_reference("epochs=2,proxy_width_mult=1")


# ---- options ---------------------------------------------------------------------------------------
def test_reference_is_the_proxy_with_the_default_changes_and_the_given_ones():
    options = FidelityOptions(proxy=replace(TINY_PROXY, train_images=500)).with_reference("epochs=3, proxy-img-size=24")
    assert (options.reference.epochs, options.reference.proxy_img_size) == (3, 24)
    assert options.reference.train_images is REFERENCE_CHANGES["train_images"] is None  # the default changes stay
    assert options.reference.proxy_depth_mult == options.proxy.proxy_depth_mult  # what is not changed is the proxy's
    assert FidelityOptions(proxy=TINY_PROXY).with_reference("train_images=800").reference.train_images == 800
    assert options.reference.dataset == options.proxy.dataset == "digits"
    assert FidelityOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset=digits", "--reference: 'dataset=digits' is not KEY=VALUE with KEY one of epochs"),
        ("epochs", "--reference: 'epochs' is not KEY=VALUE"),
        ("epochs=two", "--reference: epochs must be a whole number, got 'two'"),
        ("proxy_width_mult=2", "--reference: --proxy-width-mult must be in (0, 1]"),
    ],
)
def test_bad_reference_is_one_line_naming_the_option(text, message):
    with pytest.raises(UserError) as err:
        FidelityOptions(proxy=TINY_PROXY).with_reference(text)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(("field", "value", "flag"), [("archs", 3, "--archs"), ("seeds", 0, "--seeds"), ("concurrency", -1, "--concurrency")])
def test_bad_counts_are_refused(field, value, flag):
    with pytest.raises(UserError, match=f"^{flag} must be"):
        FidelityOptions(**{field: value})


# ---- the plan --------------------------------------------------------------------------------------
def test_architectures_are_distinct_spread_over_the_macs_strata_and_seeded():
    from archbench import space as spaces
    from archbench.measure import arch_cost

    space = spaces.load(str(TINY_SPACE))
    chosen = draw_architectures(space, 4, seed=0, pool=3)
    again = draw_architectures(space, 4, seed=0, pool=3)
    assert [a.hash for a in chosen] == [a.hash for a in again]
    assert len({a.hash for a in chosen}) == 4
    macs = [arch_cost(a).macs for a in chosen]
    assert macs == sorted(macs)  # one architecture per stratum, strata in MACs order
    pool = sorted({arch_cost(space.sample(i)).macs for i in range(12)})
    assert macs[0] <= pool[len(pool) // 4] and macs[-1] >= pool[-(len(pool) // 4) - 1]  # both ends of the range
    assert [a.hash for a in draw_architectures(space, 4, seed=1, pool=3)] != [a.hash for a in chosen]


def test_plan_round_trips_and_lists_every_evaluation_once(tmp_path):
    from archbench import space as spaces

    options = tiny_options(tmp_path / "run")
    plan = make_plan(spaces.load(str(TINY_SPACE)), options)
    plan.write(tmp_path / "plan.json")
    assert FidelityPlan.read(tmp_path / "plan.json") == plan
    evaluations = plan.evaluations()
    ids = [e.eval_id for e in evaluations]
    assert len(ids) == len(set(ids)) == 4 * (2 + 1)
    assert [e.fidelity for e in evaluations[:4]] == [REFERENCE] * 4  # the costly ones first
    assert ids[4] == "a000-proxy-s0" and ids[-1] == "a003-proxy-s1"
    assert all(a.params > 0 and a.macs > 0 for a in plan.archs)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="bad.json: unreadable fidelity plan"):
        FidelityPlan.read(tmp_path / "bad.json")


# ---- a study -------------------------------------------------------------------------------------
def test_study_records_every_evaluation_analyses_it_and_reports_in_every_format(ray_local, tmp_path, capsys):
    from archbench.fidelity.runner import run_fidelity
    from archbench.search.options import SearchOptions
    from archbench.search.runner import run_search

    runs = tmp_path / "runs"
    outcome = run_fidelity(tiny_options(runs / "study"), command=["pytest"], live=False, progress=False)
    assert outcome.counts == {"ok": 12} and not outcome.interrupted
    parts = pd.read_parquet(runs / "study" / "trials")
    assert sorted(parts.groupby("fidelity").size().items()) == [(PROXY, 8), (REFERENCE, 4)]
    proxy = parts[parts["fidelity"] == PROXY]
    assert proxy["synflow"].notna().all() and proxy["train_loss_sum"].notna().all()
    assert sorted(proxy["seed"].unique()) == [0, 1] and (parts[parts["fidelity"] == REFERENCE]["proxy_epochs"] == 2).all()
    assert parts.groupby("arch_hash")["macs"].nunique().eq(1).all()  # the full architecture's, on every row
    analysis = outcome.analysis
    assert {"params", "macs", "synflow", "val_acc", "train_loss_sum"} <= set(analysis.signals)
    assert analysis.n_archs == 4 and analysis.proxy_seed_pairs == 1
    stored = json.loads((runs / "study" / "fidelity.json").read_text())
    assert stored["n_archs"] == 4 and (runs / "study" / "fidelity.png").read_bytes()[:4] == b"\x89PNG"

    # every format of `archbench report` renders the study
    for fmt in ("table", "md", "csv", "json", "html"):
        assert main(["report", str(runs / "study"), "--format", fmt]) == 0, fmt
        out = capsys.readouterr().out
        assert "synflow" in out, fmt
    rows = json.loads(_report(capsys, str(runs / "study"), "json"))
    assert rows[0]["space"] == "tiny_search" and rows[0]["verdict"].startswith(("best cheap signal", "only baselines"))
    assert pd.read_csv(__import__("io").StringIO(_report(capsys, str(runs / "study"), "csv")))["signal"].tolist() == analysis.signals

    # a search of the same space, beside the study, shows the study's verdict
    search = SearchOptions(space=str(TINY_SPACE), trials=2, train=TINY_PROXY, concurrency=2, run_dir=str(runs / "search"))
    run_search(search, command=["pytest"], live=False, progress=False)
    table = _report(capsys, str(runs / "search"), "table")
    assert f"fidelity of tiny_search ({runs / 'study'})" in table
    assert "fidelity of tiny_search" in _report(capsys, str(runs / "search"), "md")
    # runs/ holds both kinds: the table shows both, JSON (one kind of rows) the search and says so
    both = _report(capsys, str(runs), "table")
    assert "fidelity: study" in both and "leaderboard" in both.lower()
    assert main(["report", str(runs), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert {row["run"] for row in json.loads(captured.out)} == {"search"}
    assert "study: a fidelity study: render it with archbench report" in captured.err

    # another proxy judged against the same reference: the study's reference parts are taken, only the proxy trains
    slower = replace(TINY_PROXY, lr=5e-4)
    other = run_fidelity(FidelityOptions(proxy=slower, seeds=1, concurrency=2, run_dir=str(tmp_path / "other"), reference_from=str(runs / "study")),
                         command=["pytest"], live=False, progress=False)
    assert other.counts == {"ok": 8} and other.analysis.n_archs == 4
    assert FidelityPlan.read(tmp_path / "other" / "fidelity_plan.json").archs == FidelityPlan.read(runs / "study" / "fidelity_plan.json").archs
    taken = pd.read_parquet(tmp_path / "other" / "trials").set_index("trial_id")
    source = parts.set_index("trial_id")
    refs = taken[taken["fidelity"] == REFERENCE]
    assert sorted(refs.index) == sorted(source[source["fidelity"] == REFERENCE].index)
    assert refs["val_acc"].equals(source.loc[refs.index, "val_acc"]) and (refs["run"] == "other").all()
    assert {json.loads(x)["reference_from"] for x in refs["extra_json"]} == {str((runs / "study").resolve())}
    trained = taken[taken["fidelity"] == PROXY]
    assert len(trained) == 4 and (trained["proxy_lr"] == 5e-4).all()
    manifest = json.loads((tmp_path / "other" / "manifest.json").read_text())
    assert manifest["options"]["reference_from"] == str((runs / "study").resolve())
    assert manifest["options"]["space"] == str(TINY_SPACE) and manifest["options"]["reference"]["epochs"] == 2


def _report(capsys, run: str, fmt: str) -> str:
    assert main(["report", run, "--format", fmt]) == 0
    return capsys.readouterr().out


@pytest.mark.slow  # a driver subprocess starting its own Ray, twice: ~60 s
def test_resume_after_kill_9_runs_each_evaluation_exactly_once(driver, tmp_path):
    run = tmp_path / "study"
    first = driver("fidelity", *TINY_FLAGS, "--concurrency", "1", "--run-dir", str(run)).start()
    deadline = time.monotonic() + 300
    while not list((run / "trials").glob("part-*.parquet")):
        assert first.proc.poll() is None, f"the driver ended early: {first.proc.communicate()}"
        assert time.monotonic() < deadline, "no evaluation finished in time"
        time.sleep(0.2)
    first.kill_group(signal.SIGKILL)
    first.proc.wait(timeout=30)
    assert wait_for_exit(first.tag, timeout=90) == [], "Ray processes outlived the killed driver"
    before = {p.name: p.read_bytes() for p in (run / "trials").glob("part-*.parquet")}
    assert 1 <= len(before) < 12

    code, out, err = driver("fidelity", "--resume", "--run-dir", str(run), "--no-live").run(timeout=300)
    assert code == 0, err
    assert "Traceback" not in err and "verdict:" in out
    parts = pd.read_parquet(run / "trials")
    assert len(parts) == 12 and parts["trial_id"].is_unique and (parts["status"] == "ok").all()
    assert all((run / "trials" / name).read_bytes() == data for name, data in before.items())  # nothing redone
    assert len(json.loads((run / "manifest.json").read_text())["resumed"]) == 1


def test_resume_refuses_a_search_folder_and_changed_settings(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"kind": "search"}))
    assert main(["fidelity", "--resume", "--run-dir", str(run), "--archs", "8"]) == 2
    assert "--resume continues a study as it was planned" in capsys.readouterr().err
    assert main(["fidelity", "--resume"]) == 2
    assert "--resume needs --run-dir" in capsys.readouterr().err


def test_reference_from_refuses_what_it_takes_other_runs_and_another_dataset(tmp_path, capsys):
    from archbench import space as spaces
    from archbench.search.prepare import new_manifest
    from archbench.store.run import RunFolder

    study = tmp_path / "study"  # a study's folder as it stands before its first evaluation
    space = spaces.load(str(TINY_SPACE))
    folder = RunFolder.create(study)
    manifest = new_manifest("fidelity", options=FidelityOptions(proxy=TINY_PROXY).to_dict(), space=space, source=str(TINY_SPACE),
                            command=["pytest"], objectives=[], seed=0, latency_isolation="none")
    folder.write_manifest(manifest, space_text=space.source_text)
    FidelityPlan(archs=(), seeds=2, reference_seeds=1, draw_seed=0, pool_size=2).write(study / "fidelity_plan.json")
    new = tmp_path / "new"

    assert main(["fidelity", "--reference-from", str(study), "--archs", "8", "--seed", "3", "--run-dir", str(new)]) == 2
    assert "--reference-from takes the space, architectures and reference training of" in (err := capsys.readouterr().err)
    assert err.rstrip().endswith("leave out --archs, --seed") and err.count("\n") == 1
    assert main(["fidelity", "--reference-from", str(study), "--dataset", "fashion-mnist-subset", "--run-dir", str(new)]) == 2
    assert f"{study}'s reference trained on digits; the proxy must train on it too (--dataset digits)" in capsys.readouterr().err
    search = tmp_path / "search"
    RunFolder.create(search).write_manifest(replace(manifest, kind="search"))
    assert main(["fidelity", "--reference-from", str(search), "--dataset", "digits", "--run-dir", str(new)]) == 2
    assert f"--reference-from: {search} holds a search run, not a fidelity study" in capsys.readouterr().err
    (study / "fidelity_plan.json").unlink()
    assert main(["fidelity", "--reference-from", str(study), "--dataset", "digits", "--run-dir", str(new)]) == 2
    assert "fidelity_plan.json is missing: the study's architectures cannot be taken from it" in capsys.readouterr().err
    assert not new.exists()  # nothing left behind by a refused study
    assert main(["fidelity", "--resume", "--run-dir", str(study), "--reference-from", str(study)]) == 2
    assert "--resume continues a study as it was planned" in capsys.readouterr().err


def test_an_explicit_concurrency_below_one_is_refused(tmp_path, capsys):
    assert main(["fidelity", *TINY_FLAGS, "--concurrency", "0", "--run-dir", str(tmp_path / "study")]) == 2
    assert "--concurrency must be >= 1, got 0 (leave it out" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_bad_dataset_leaves_no_folder_behind(tmp_path, capsys):
    run = tmp_path / "study"
    assert main(["fidelity", *TINY_FLAGS[:2], "--dataset", "cifar10:/nonexistent", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/nonexistent" in err
    assert not run.exists()


@pytest.mark.slow  # a driver subprocess: the plan is drawn before Ray is joined
def test_an_unreachable_ray_address_leaves_nothing_behind(driver, tmp_path):
    from search_helpers import free_port

    run = tmp_path / "study"
    code, out, err = driver("fidelity", *TINY_FLAGS, "--run-dir", str(run), "--ray-address", f"127.0.0.1:{free_port()}").run(timeout=300)
    assert code == 2, (out, err)
    assert err.strip().startswith("archbench: error: --ray-address: cannot join Ray at 127.0.0.1:") and len(err.strip().splitlines()) == 1
    assert not run.exists()  # the same command can simply be run again
