"""`archbench spaces` and `archbench space show`: JSON on stdout only, tables otherwise, sizes and
MACs ranges, sampled architectures with parameters and MACs, and the 10-second budget of `show`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archbench import zoo
from archbench.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out)


def test_spaces_lists_the_shipped_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "spaces", "--json", "--no-ranges")
    by_name = {r["name"]: r for r in rows}
    assert {"hybrid_vit", "isotropic_vit", "tiny_cpu"} <= set(by_name)
    hybrid = by_name["hybrid_vit"]
    assert hybrid["layout"] == "pyramid" and hybrid["size_log10"] > 15
    assert hybrid["constraints"] == {"max_macs": 6e9}
    assert by_name["isotropic_vit"]["layout"] == "isotropic"


def test_spaces_reports_macs_ranges(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path))
    rows = run_json(capsys, "spaces", "--json", "--range-samples", "2")
    for row in rows:
        assert 0 < row["macs_min"] <= row["macs_max"]
        assert 0 < row["params_min"] <= row["params_max"]
        assert row["range_samples"] == 2 and "meta-device" in row["range_method"]
    tiny = next(r for r in rows if r["name"] == "tiny_cpu")
    assert tiny["macs_max"] < 1e8  # tiny: tens of MMACs at 64 px
    # The table form, from the cache this time.
    assert main(["spaces", "--range-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "hybrid_vit" in out and "tiny_cpu" in out and "log10" in out


def test_space_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "space", "show", "tiny_cpu", "--samples", "2", "--seed", "5", "--json")
    assert data["name"] == "tiny_cpu" and data["layout"] == "pyramid"
    assert [s["seed"] for s in data["samples"]] == [5, 6]
    for sample in data["samples"]:
        assert sample["params"] <= 2e6  # the space's max_params
        assert sample["macs"] > 0 and len(sample["hash"]) == 16
    labels = [child["label"] for child in data["outline"]["children"]]
    assert any(label.startswith("stage1") for label in labels) and any(label.startswith("stem") for label in labels)


def test_space_show_prints_the_tree_and_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "show", "tiny_cpu", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny_cpu" in out and "stage3" in out and "base_dim" in out
    assert "2 sampled architectures at 64 px" in out


def test_space_show_a_zoo_preset_is_one_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "space", "show", "deit_s", "--samples", "1", "--json")
    assert data["size_log10"] == 0.0
    assert data["samples"][0]["hash"] == zoo.get("deit_s").hash
    assert abs(data["samples"][0]["params"] - 22.05e6) < 0.01e6


def test_space_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space"]) == 2
    assert "archbench space show" in capsys.readouterr().err


def test_negative_sample_count_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["space", "show", "tiny_cpu", "--samples", "-1"])
    assert err.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["spaces", "--range-samples", "1000000000000"],
         "--range-samples must be between 1 and 10000 (each sample is built and counted), got 1000000000000"),
        (["space", "show", "tiny_cpu", "--samples", "100000000"],
         "--samples must be between 0 and 10000 (each sample is built and counted), got 100000000"),
    ],
)
def test_a_huge_sample_count_is_refused_at_once(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    started = time.monotonic()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == f"archbench: error: {message}\n" and captured.out == ""
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_space_show_hybrid_vit_five_samples_in_under_ten_seconds(repo: Path) -> None:
    # The budget is for a 2-core machine doing nothing else; on a busy one the timing says nothing.
    if os.getloadavg()[0] > 1.5:
        pytest.skip(f"machine busy (load average {os.getloadavg()[0]:.1f}): timing would be meaningless")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "bench.py", "space", "show", "hybrid_vit", "--samples", "5"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "5 sampled architectures at 224 px" in done.stdout
    assert elapsed < 10.0, f"took {elapsed:.1f} s"
