"""`archbench report`: JSON rows against a hand computation, md/csv/html/plot outputs, several runs
and samplers, zoo anchors with their cache, and one line per bad input (exit 0 while a run is read)."""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from archbench.cli import main

PNG = b"\x89PNG\r\n\x1a\n"

# (val_acc, GMACs): two exact duplicates on the front, a tie in accuracy, a dominated duplicate pair.
POINTS = [(0.90, 2.0), (0.90, 2.0), (0.80, 1.0), (0.80, 1.5), (0.95, 4.0), (0.70, 3.0), (0.70, 3.0), (0.99, 9.0)]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def hand_pareto(frame: pd.DataFrame) -> set[str]:
    """Trials no other ok trial beats: accuracy >= and MACs <= with one strictly better."""
    ok = frame[frame["status"] == "ok"]
    front = set()
    for _, a in ok.iterrows():
        beaten = ((ok.val_acc >= a.val_acc) & (ok.macs <= a.macs) & ((ok.val_acc > a.val_acc) | (ok.macs < a.macs))).any()
        if not beaten:
            front.add(a.trial_id)
    return front


@pytest.fixture
def demo(make_run) -> Path:
    trials = [{"val_acc": acc, "macs": int(g * 1e9), "params": int(g * 5e6)} for acc, g in POINTS]
    trials.append({"status": "rejected", "macs": int(7e9), "error": "7 GMACs exceeds max_macs 6 G"})
    trials.append({"status": "failed", "error": "NaN loss"})
    return make_run("demo", trials)


def test_json_is_the_pareto_set_of_the_parquet(capsys, demo):
    code, out, err = run_cli(capsys, "report", str(demo), "--format", "json")
    rows = json.loads(out)  # stdout is JSON and nothing else
    assert code == 0 and err == ""
    expected = hand_pareto(pd.read_parquet(demo / "trials"))
    assert {r["trial_id"] for r in rows if r["pareto"]} == expected == {"00000", "00001", "00002", "00004", "00007"}
    assert all({"trial_id", "run", "val_acc", "macs", "pareto_rank", "pareto"} <= set(r) for r in rows)
    by_id = {r["trial_id"]: r for r in rows}
    assert by_id["00005"]["pareto_rank"] == by_id["00006"]["pareto_rank"] == 2  # dominated duplicates share a rank
    assert by_id["00008"]["pareto_rank"] is None and by_id["00008"]["pareto"] is False  # rejected: not ranked
    assert len(rows) == 10 and rows[0]["pareto"]  # front first


def test_markdown_csv_and_html_are_what_they_say(capsys, demo, tmp_path):
    code, out, _ = run_cli(capsys, "report", str(demo), "--format", "md", "--top", "3")
    assert code == 0 and out.startswith("# archbench report")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| # | front | run | trial | architecture | params (M) | GMACs")
    assert sum("| demo |" in line for line in table) == 3 + 1  # --top 3 leaderboard rows + the per-run row
    assert "hypervolume" in out and "--hv-bounds" in out

    code, out, _ = run_cli(capsys, "report", str(demo), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 10
    assert {r["trial_id"] for r in rows if r["pareto"] == "True"} == {"00000", "00001", "00002", "00004", "00007"}
    assert rows[0]["macs"].isdigit()

    target = tmp_path / "report.html"
    code, out, err = run_cli(capsys, "report", str(demo), "--format", "html", "--output", str(target))
    page = target.read_text()
    assert code == 0 and out == "" and f"wrote {target}" in err
    assert page.startswith("<!doctype html>") and page.count("<table>") == 2 and "src=\"http" not in page
    image = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert image and base64.b64decode(image.group(1)).startswith(PNG)


def test_plot_writes_a_small_png(capsys, demo, tmp_path):
    target = tmp_path / "plots" / "front.png"
    code, out, err = run_cli(capsys, "report", str(demo), "--plot", str(target), "--format", "json")
    assert code == 0 and json.loads(out) and f"wrote {target}" in err
    data = target.read_bytes()
    assert data.startswith(PNG) and len(data) < 150_000


def test_two_runs_of_two_samplers_each_with_its_hypervolume(capsys, make_run, tmp_path):
    nsga = make_run("nsga", [{"val_acc": 0.9, "macs": int(1e9)}, {"val_acc": 0.95, "macs": int(2e9)}], sampler="nsga2")
    rand = make_run("rand", [{"val_acc": 0.7, "macs": int(3e9)}, {"val_acc": 0.85, "macs": int(1.5e9)}], sampler="random")
    summary = tmp_path / "summary.json"
    code, out, _ = run_cli(capsys, "report", str(nsga), str(rand), "--by", "sampler", "--format", "md", "--summary", str(summary))
    assert code == 0 and "## Per sampler" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if re.match(r"\| (nsga2|random) \|", line)}
    assert set(rows) == {"nsga2", "random"}
    data = json.loads(summary.read_text())
    hv = {g["sampler"]: g["hypervolume"] for g in data["groups"]}
    assert set(hv) == {"nsga2", "random"} and 0 < hv["random"] < hv["nsga2"] <= 1
    assert all(f"{hv[k]:.4f}" in rows[k] for k in hv)
    box = data["hypervolume_box"]
    assert box["reference_point"]["macs"] == pytest.approx(3e9 + 0.2e9) and box["implementation"] == "moocore.hypervolume"
    # The JSON rows hold both runs, ranked as one table.
    code, out, _ = run_cli(capsys, "report", str(nsga), str(rand), "--format", "json")
    assert {r["run"] for r in json.loads(out)} == {"nsga", "rand"}


def test_terminal_table_names_every_column_and_status_counts(capsys, demo):
    code, out, _ = run_cli(capsys, "report", str(demo), "--top", "2")
    assert code == 0
    for header in ("front", "architecture", "params (M)", "GMACs", "latency (ms)", "val acc (%)", "status", "hypervolume"):
        assert header in out
    assert "ok 8 · failed 1 · rejected 1" in out and "leaderboard (2 of 10 trials)" in out


def test_bad_inputs_are_one_line_each_and_the_rest_is_reported(capsys, make_run, tmp_path):
    good = make_run("good", [{"val_acc": 0.9, "macs": int(1e9)}, {"val_acc": 0.8, "macs": int(2e9)}])
    (good / "trials" / "part-99999.parquet").write_bytes(b"not parquet at all")
    empty = make_run("empty", [])
    not_run = tmp_path / "notes"
    not_run.mkdir()
    code, out, err = run_cli(capsys, "report", str(good), str(tmp_path / "missing"), str(empty), str(not_run), "--format", "json")
    lines = err.strip().splitlines()
    assert code == 0 and len(json.loads(out)) == 2
    assert len(lines) == 4 and all(line.startswith("archbench: warning: ") for line in lines)
    assert any("missing: no such folder" in line for line in lines)
    assert any("part-99999.parquet: skipped (not a readable Parquet file" in line for line in lines)
    assert any("empty: no trials yet" in line for line in lines)
    assert any("notes: not a run folder" in line for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--objectives", "val_acc,zero_cost"], "--objectives: unknown objective 'zero_cost'"),
        (["--top", "0"], "--top must be >= 1"),
        (["--plot", "front.jpg"], "expected a .png file name"),
        (["--hv-bounds", "params=0:1"], "'params' is not an objective"),
        (["--with-zoo", "swin_x"], "unknown zoo preset 'swin_x'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, demo, argv, message):
    code, out, err = run_cli(capsys, "report", str(demo), *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["table", "md"])
@pytest.mark.parametrize(
    ("target", "why"),
    [("out.png", "it is a folder; give a file name"), ("notes.txt/report", "{tmp}/notes.txt is a file, not a folder")],
    ids=["a-folder", "under-a-file"],
)
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(capsys, demo, tmp_path, fmt, target, why):
    (tmp_path / "out.png").mkdir()
    (tmp_path / "notes.txt").write_text("kept")
    for option, suffix in (("--output", ".md"), ("--summary", ".json"), ("--plot", ".png")):
        path = (tmp_path / target).with_suffix(suffix) if "/" in target else tmp_path / target
        code, out, err = run_cli(capsys, "report", str(demo), "--format", fmt, option, str(path))
        assert code == 2 and out == ""
        assert err.splitlines() == [f"archbench: error: {option}: {path}: cannot write ({why.format(tmp=tmp_path)})"]
    assert (tmp_path / "notes.txt").read_text() == "kept" and not any((tmp_path / "out.png").iterdir())


def test_an_output_in_a_read_only_folder_is_one_line(capsys, demo, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.geteuid() == 0:  # root writes anywhere: ask as a user for whom the folder is read-only
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and access(path, mode))
    code, out, err = run_cli(capsys, "report", str(demo), "--output", str(locked / "report.md"))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"archbench: error: --output: {locked / 'report.md'}: cannot write (the folder {locked} is not writable)"]


@pytest.mark.parametrize("fmt", ["table", "md"])
def test_an_output_is_written_whole_or_not_at_all(capsys, demo, tmp_path, monkeypatch, fmt):
    """Rendered in full before the file is touched: a failure part-way keeps the earlier file."""
    from archbench.report import export

    target = tmp_path / "reports" / "report.txt"  # missing folders are created
    code, _, err = run_cli(capsys, "report", str(demo), "--format", fmt, "--output", str(target))
    first = target.read_text()
    assert code == 0 and f"wrote {target}" in err and "leaderboard" in first.lower()

    def broken(*args, **kwargs):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(export, "print_report" if fmt == "table" else "to_markdown", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):  # a bug: it keeps its traceback
        main(["report", str(demo), "--format", fmt, "--output", str(target)])
    assert target.read_text() == first and [p.name for p in target.parent.iterdir()] == ["report.txt"]


def test_nothing_readable_exits_2(capsys, tmp_path):
    code, out, err = run_cli(capsys, "report", str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"archbench: error: no run could be read: {tmp_path / 'nope'}: no such folder"]


def test_default_is_every_run_under_runs(capsys, make_run, tmp_path, monkeypatch):
    make_run("one", [{"val_acc": 0.9, "macs": int(1e9)}])
    make_run("two", [{"val_acc": 0.8, "macs": int(2e9)}])
    (tmp_path / "runs" / "scratch").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "report", "--format", "json")
    assert code == 0 and {r["run"] for r in json.loads(out)} == {"one", "two"}
    assert "scratch: not a run folder" in err


def test_zoo_anchors_are_measured_once_then_cached(capsys, demo, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "report", str(demo), "--with-zoo", "deit_ti", "--format", "json", "--plot", str(tmp_path / "z.png"))
    zoo = [r for r in json.loads(out) if r["kind"] == "zoo"]
    assert code == 0 and "measuring zoo preset deit_ti at 64 px" in err
    assert zoo[0]["trial_id"] == "deit_ti" and zoo[0]["pareto"] is False and zoo[0]["val_acc"] is None
    # DeiT-Ti (5,717,416 at 224 px) with 4×4 + 1 instead of 14×14 + 1 position embeddings of width 192.
    assert zoo[0]["params"] == 5_717_416 - (197 - 17) * 192
    assert list((tmp_path / "cache" / "zoo").glob("*.json"))

    import archbench.measure

    monkeypatch.setattr(archbench.measure, "profile", lambda *a, **k: pytest.fail("measured again despite the cache"))
    code, out, err = run_cli(capsys, "report", str(demo), "--with-zoo", "deit_ti", "--format", "md")
    assert code == 0 and "measuring" not in err and "| zoo | zoo | deit_ti |" in out and "1 of 1 from the cache" in out


@pytest.mark.slow
def test_end_to_end_search_then_report(tmp_path, repo):
    """A real tiny search (Ray, proxy training), then the report's JSON against pandas by hand."""
    run_dir = tmp_path / "run"
    search = [sys.executable, "bench.py", "search", "--space", "hybrid_vit", "--trials", "5", "--epochs", "1", "--seed", "2", "--dataset", "digits",
              "--run-dir", str(run_dir), "--no-live"]
    done = subprocess.run(search, cwd=repo, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = subprocess.run([sys.executable, "bench.py", "report", str(run_dir), "--format", "json"], cwd=repo,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)
    frame = pd.read_parquet(run_dir / "trials")
    assert {r["trial_id"] for r in rows if r["pareto"]} == hand_pareto(frame)
    assert len(rows) == len(frame) == 5
    plot = tmp_path / "front.png"
    drawn = subprocess.run([sys.executable, "bench.py", "report", str(run_dir), "--plot", str(plot)], cwd=repo,
                           capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0 and plot.read_bytes().startswith(PNG)


def test_with_zoo_before_a_run_folder_takes_the_folder_as_a_run(capsys, demo, monkeypatch):
    import archbench.report.summary as summary

    asked = {}
    monkeypatch.setattr(summary, "measure_anchors", lambda names, **kw: asked.setdefault("names", names) and [])
    code, out, _ = run_cli(capsys, "report", "--with-zoo", str(demo), "--format", "json")
    assert code == 0 and len(json.loads(out)) == 10
    assert asked["names"][0] == "swin_t"  # no layout recorded in these trials: the pyramid defaults


def test_a_run_ranked_on_a_zero_cost_score(capsys, make_run, tmp_path):
    """A search on synflow and MACs trains nothing: no val_acc anywhere, and every rendering ranks
    and shows the score (3 significant digits) instead."""
    points = [(4.2e21, 2.0), (3.1e9, 1.0), (1.0e9, 1.5), (None, 0.5)]  # None: a score that was not finite
    run = make_run(
        "zc",
        [{"synflow": s, "nwot": 500.0, "macs": int(g * 1e9), "epochs_run": 0} for s, g in points],
        objectives=(("synflow", "max"), ("macs", "min")),
    )
    code, out, err = run_cli(capsys, "report", str(run), "--format", "json")
    rows = {r["trial_id"]: r for r in json.loads(out)}
    assert code == 0 and err == ""
    assert {t for t, r in rows.items() if r["pareto"]} == {"00000", "00001"}
    assert rows["00002"]["pareto_rank"] == 1 and rows["00003"]["pareto_rank"] is None  # no score: not ranked
    assert rows["00000"]["synflow"] == 4.2e21 and rows["00000"]["val_acc"] is None

    code, out, _ = run_cli(capsys, "report", str(run), "--format", "md")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert code == 0 and table[0].endswith("| val acc (%) | synflow | status |")
    assert any("| 4.2e+21 | ok |" in line for line in table[1:5]) and any("| – | ok |" in line for line in table[1:5])
    assert "best synflow" in out and "synflow 4.2e+21 →" in out  # the hypervolume box's ideal
    assert "--hv-bounds 'synflow=4.2e+21:-4.2e+20,macs=1G:2.1G'" in out
    code, out, _ = run_cli(capsys, "report", str(run), "--format", "csv")
    assert code == 0 and float(next(csv.DictReader(io.StringIO(out)))["synflow"]) == 4.2e21
    code, out, _ = run_cli(capsys, "report", str(run), "--top", "3")
    assert code == 0 and "synflow" in out and "4.2e+21" in out
    target = tmp_path / "zc.png"
    code, _, _ = run_cli(capsys, "report", str(run), "--plot", str(target), "--format", "json")
    assert code == 0 and target.read_bytes().startswith(PNG)
