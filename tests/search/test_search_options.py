"""`archbench search` option checking: bad input is one line on stderr and exit status 2, before any
run folder or Ray exists; objectives parse; a run folder in use is refused (no Ray needed here)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archbench.cli import main
from archbench.errors import UserError
from archbench.objectives import Objective, parse_objectives
from archbench.search.options import SearchOptions
from archbench.store.run import RunDirLock
from archbench.train import TrainConfig
from search_helpers import TINY_SPACE


def search_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["search", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archbench: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_objectives_parse_with_natural_directions():
    assert parse_objectives("val_acc,macs:min,latency_ms") == (
        Objective("val_acc", "max"),
        Objective("macs", "min"),
        Objective("latency_ms", "min"),
    )
    assert Objective("latency_ms", "min").metric == "latency_ms_median"
    opts = SearchOptions(objectives=parse_objectives("val_acc:max,params:min"))
    assert SearchOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts


def test_what_the_objectives_need():
    """Training for val_acc only; the dataset for it and the zero-cost scores; nothing else for costs."""
    def needs(text: str) -> tuple[bool, bool]:
        options = SearchOptions(objectives=parse_objectives(text))
        return options.needs_training, options.needs_data

    assert needs("val_acc:max,macs:min") == (True, True)
    assert needs("synflow:max,macs:min") == (False, True)
    assert needs("nwot,grad_norm,snip") == (False, True)
    assert needs("macs,params,latency_ms") == (False, False)
    assert [o.direction for o in parse_objectives("synflow,nwot,grad_norm,snip")] == ["max"] * 4


def test_a_missing_dataset_is_an_error_for_zero_cost_objectives_only(capsys, tmp_path):
    common = ("--space", str(TINY_SPACE), "--dataset", "cifar10:/nope", "--run-dir", str(tmp_path / "run"))
    assert_usage_error(*search_cli(capsys, *common, "--objectives", "synflow:max,macs:min"), "cifar10:/nope")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, needle",
    [("foo", "unknown objective 'foo'"), ("val_acc:up", "must be max or min"), ("macs,macs", "given twice"), (",", "at least one")],
)
def test_bad_objectives_are_rejected(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_objectives(text)


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--objectives", "foo"], ["--objectives", "unknown objective 'foo'"]),
        (["--trials", "0"], ["--trials must be >= 1"]),
        (["--scheduler", "asha", "--objectives", "macs:min"], ["asha", "val_acc"]),
        (["--proxy-width-mult", "2"], ["--proxy-width-mult"]),
        (["--time-budget", "-1"], ["--time-budget"]),
        (["--max-macs", "lots"], ["max"]),
        (["--space", "no_such_space_xyz"], ["no_such_space_xyz", "unknown space"]),
        (["--seed", "-1"], ["--seed must be an integer in [0, 2147483648), got -1"]),
        (["--lr", "nan"], ["--lr must be > 0, got nan"]),
        (["--mixup", "-1"], ["--mixup"]),
        (["--concurrency", "0"], ["--concurrency must be >= 1, got 0 (leave it out to run CPUs / --cpus-per-trial trials at once)"]),
        (["--concurrency", "-3"], ["--concurrency must be >= 1, got -3"]),
    ],
)
def test_bad_options_are_one_line_errors(capsys, tmp_path, argv, needles):
    code, out, err = search_cli(capsys, "--space", str(TINY_SPACE), "--run-dir", str(tmp_path / "run"), *argv)
    assert_usage_error(code, out, err, *needles)
    assert not (tmp_path / "run").exists()


def test_a_run_dir_that_is_a_file_is_a_one_line_error(capsys, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("kept")
    code, out, err = search_cli(capsys, "--space", str(TINY_SPACE), "--run-dir", str(not_a_folder))
    assert_usage_error(code, out, err, f"--run-dir: {not_a_folder} is a file, not a folder")
    assert not_a_folder.read_text() == "kept"


def test_a_missing_dataset_fails_before_the_run_folder_exists(capsys, tmp_path):
    code, out, err = search_cli(capsys, "--space", str(TINY_SPACE), "--dataset", "cifar10:/nope", "--run-dir", str(tmp_path / "run"))
    assert_usage_error(code, out, err, "cifar10:/nope")
    assert not (tmp_path / "run").exists()


def test_an_impossible_budget_fails_before_the_run_folder_exists(capsys, tmp_path):
    code, out, err = search_cli(capsys, "--space", str(TINY_SPACE), "--max-macs", "1k", "--run-dir", str(tmp_path / "run"))
    assert_usage_error(code, out, err, "max_macs", "below every sample")
    assert not (tmp_path / "run").exists()


def test_an_existing_run_needs_resume(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    code, out, err = search_cli(capsys, "--space", str(TINY_SPACE), "--run-dir", str(run))
    assert_usage_error(code, out, err, str(run), "already holds a run", "--resume")


def test_resume_needs_a_run_dir(capsys):
    code, out, err = search_cli(capsys, "--resume")
    assert_usage_error(code, out, err, "--resume needs --run-dir")


def test_resume_of_a_folder_that_is_no_run(capsys, tmp_path):
    code, out, err = search_cli(capsys, "--resume", "--run-dir", str(tmp_path))
    assert_usage_error(code, out, err, "not a run folder")


def test_a_run_folder_in_use_is_refused(tmp_path):
    holder = RunDirLock()
    holder.acquire(tmp_path)
    try:
        with pytest.raises(ValueError, match="in use by another archbench search"):
            RunDirLock().acquire(tmp_path)
    finally:
        holder.release()
    second = RunDirLock()
    second.acquire(tmp_path)  # free again once the holder let go
    second.release()


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for flag in ("--space", "--trials", "--objectives", "--resume", "--ray-address", "--time-budget", "--scheduler"):
        assert flag in out


def test_resume_keeps_the_stored_settings(tmp_path):
    """Only the flags that may change on --resume do; the rest come from the manifest, and one
    given with another value is refused, naming the run's value (nothing is written)."""
    from archbench.search.prepare import prepare_run

    first = SearchOptions(space=str(TINY_SPACE), trials=2, train=TrainConfig(epochs=3, seed=5), run_dir=str(tmp_path / "run"))
    options, run_dir, manifest = prepare_run(first, ["bench.py", "search"], {"space", "trials", "epochs", "run_dir", "seed"})
    assert (run_dir / "space.yaml").is_file() and manifest.seed == 5
    before = (Path(run_dir) / "manifest.json").read_bytes()
    changed = SearchOptions(space="hybrid_vit", trials=4, train=TrainConfig(epochs=9, seed=1), run_dir=str(run_dir), resume=True)
    with pytest.raises(UserError, match=r"^--epochs: the run in .* was started with 3, got 9; a resumed run keeps its settings \(only --concurrency, "):
        prepare_run(changed, ["bench.py", "search", "--resume"], {"trials", "epochs", "seed", "run_dir", "resume", "space"})
    with pytest.raises(UserError, match=f"^--space: the run in .* was started with '{TINY_SPACE}', got 'hybrid_vit'"):
        prepare_run(changed, ["bench.py", "search", "--resume"], {"run_dir", "resume", "space"})
    assert (Path(run_dir) / "manifest.json").read_bytes() == before
    again = SearchOptions(space=str(TINY_SPACE), trials=4, train=TrainConfig(epochs=3, seed=1), run_dir=str(run_dir), resume=True)
    resumed, _, manifest2 = prepare_run(again, ["bench.py", "search", "--resume"], {"trials", "epochs", "run_dir", "resume", "space"})
    assert (resumed.trials, resumed.train.epochs, resumed.train.seed, resumed.space) == (4, 3, 5, str(TINY_SPACE))
    assert manifest2.run_id == manifest.run_id and manifest2.resumed == ["bench.py search --resume"]
    stored = json.loads((Path(run_dir) / "manifest.json").read_text())
    assert stored["options"]["trials"] == 4 and stored["resumed"] == ["bench.py search --resume"]
    assert stored["kind"] == "search"
    (Path(run_dir) / "manifest.json").write_text(json.dumps({**stored, "kind": "fidelity"}))
    with pytest.raises(ValueError, match="holds a fidelity run, not a search"):
        prepare_run(again, ["bench.py", "search", "--resume"], {"trials", "run_dir", "resume"})


def test_progress_lines_and_running_count(tmp_path):
    """--no-live (or no terminal): one line per ended trial; the running count follows Tune's ids."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from archbench.search.callbacks import ProgressView
    from archbench.store import TrialRecord

    buffer = io.StringIO()
    view = ProgressView(SearchOptions(trials=3), tmp_path, already={"00000": "ok"}, live=False, console=Console(file=buffer, width=60))
    view.on_trial_start(0, [], SimpleNamespace(trial_id="ab12"))
    view.on_trial_start(0, [], SimpleNamespace(trial_id="cd34"))
    assert len(view.running) == 2
    view.add(TrialRecord(run="r", trial_id="00001", status="rejected", macs=7_000_000_000, error="7 GMACs exceeds max_macs 6 G", arch_summary="cmt | focal×3 · mhsa×1 · convnext×15"))
    view.on_trial_complete(0, [], SimpleNamespace(trial_id="ab12"))
    view.on_trial_error(0, [], SimpleNamespace(trial_id="cd34"))
    assert not view.running
    (line,) = buffer.getvalue().splitlines()  # one line, not wrapped at the console width
    assert line.startswith("[2/3] trial 00001 rejected") and "7.00 GMACs" in line and line.endswith("(7 GMACs exceeds max_macs 6 G)")
    quiet = io.StringIO()
    silent = ProgressView(SearchOptions(trials=3), tmp_path, already={}, quiet=True, console=Console(file=quiet))
    silent.add(TrialRecord(run="r", trial_id="00001", status="ok"))
    assert quiet.getvalue() == ""


def test_the_live_front_follows_the_run_objectives(tmp_path):
    """The front is drawn over the run's own objectives; trials without a value of one are left out."""
    import io

    from rich.console import Console

    from archbench.search.callbacks import ProgressView
    from archbench.store import TrialRecord

    options = SearchOptions(trials=3, objectives=parse_objectives("synflow:max,macs:min"))
    view = ProgressView(options, tmp_path, already={}, live=False, quiet=True)
    view.add(TrialRecord(run="r", trial_id="00000", status="ok", synflow=3.25e12, macs=2_000_000_000, arch_summary="big"))
    view.add(TrialRecord(run="r", trial_id="00001", status="ok", synflow=1.5e9, macs=500_000_000, arch_summary="small"))
    view.add(TrialRecord(run="r", trial_id="00002", status="ok", synflow=None, macs=100_000_000, arch_summary="unscored"))
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(view.render())
    text = buffer.getvalue()
    assert "current front (synflow ↑, GMACs ↓)" in text and "val_acc" not in text
    assert text.index("3.25e+12") < text.index("1.5e+09")  # best synflow first
    assert "2.00" in text and "0.50" in text and "unscored" not in text
    # The default objectives with no accuracy yet: an empty front, not an error.
    empty = ProgressView(SearchOptions(trials=3), tmp_path, already={}, live=False, quiet=True)
    empty.add(TrialRecord(run="r", trial_id="00000", status="ok", macs=1))
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(empty.render())
    assert "current front (val acc (%) ↑, GMACs ↓)" in buffer.getvalue()
