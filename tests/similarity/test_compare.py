"""`archbench compare` on real (tiny) proxies: block layers of zoo models, the heatmap and matrix files,
trials of a run as operands, and bad input as one line."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

import archbench
from archbench import zoo
from archbench.cli import main
from archbench.similarity import block_layers, resolve_operand
from archbench.store import TrialRecord, arch_fields, write_trial
from archbench.train import TrainConfig

# Digits at 32 px (ConvNeXt's total stride), narrow and shallow proxies: a comparison in about a second.
TINY = ["--dataset", "digits", "--proxy-img-size", "32", "--proxy-width-mult", "0.25", "--proxy-depth-mult", "0.25", "--device", "cpu"]


def test_block_layers_are_the_published_depths() -> None:
    with torch.device("meta"):
        deit, convnext = archbench.build("deit_s"), archbench.build("convnext_t")
    assert [n for n, _ in block_layers(deit)] == [f"blocks.{i}" for i in range(12)]
    names = [n for n, _ in block_layers(convnext)]
    assert len(names) == 3 + 3 + 9 + 3  # ConvNeXt-T's stage depths (Liu et al., 2022)
    assert names[-1] == "stages.3.blocks.2"


def test_compare_writes_heatmap_and_matrices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png, js, pa = tmp_path / "out" / "cka.png", tmp_path / "m.json", tmp_path / "m.parquet"
    code = main(["compare", "deit_ti", "convnext_t", *TINY, "--plot", str(png), "--output", str(js), "--cka-batch", "64", "--images", "200"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("CKA deit_ti × convnext_t (3 × 5 blocks, at initialisation, 192 digits images at 32 px): mean ")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert data["layers_a"] == ["blocks.0", "blocks.1", "blocks.2"]
    assert data["layers_b"] == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.2.blocks.0", "stages.2.blocks.1", "stages.3.blocks.0"]
    matrix = torch.tensor(data["cka"])
    assert matrix.shape == (3, 5) and bool(((matrix > -0.05) & (matrix <= 1.0 + 1e-9)).all())

    assert main(["compare", "deit_ti", "deit_ti", *TINY, "--output", str(pa), "--cka-batch", "64", "--images", "200", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # --json: the result on stdout, nothing else
    assert printed["images"] == 192 and printed["trained"] is False and len(printed["cka"]) == 3
    table = pq.read_table(pa).to_pylist()
    assert len(table) == 9
    diagonal = [row["cka"] for row in table if row["index_a"] == row["index_b"]]
    assert diagonal == pytest.approx([1.0] * 3, abs=1e-9)  # the same seed builds the same weights


def test_a_trial_of_a_run_is_an_operand(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = TrainConfig(dataset="digits", proxy_img_size=16, proxy_width_mult=0.25, seed=5)
    arch = zoo.get("pvt_ti")
    write_trial(run, TrialRecord(run="run", trial_id="00003", status="ok", **arch_fields(arch), **config.record_fields()))
    for text in (f"{run}:00003", f"{run}:3"):
        operand = resolve_operand(text)
        assert operand.arch == arch and operand.train == config and operand.label == text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope_net", "deit_ti"], "unknown model 'nope_net'"),
        (["deit_ti", "deit_ti", "--output", "m.csv"], "--output: m.csv: give a .json or .parquet file"),
        (["deit_ti", "deit_ti", *TINY, "--cka-batch", "3"], "--cka-batch: CKA's unbiased estimator needs at least 4 examples a batch"),
        (["deit_ti", "deit_ti", *TINY, "--images", "10"], "fewer than one CKA batch of 256; lower --cka-batch"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_missing_trial_names_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run" / "trials").mkdir(parents=True)
    assert main(["compare", f"{tmp_path / 'run'}:7", "deit_ti"]) == 2
    assert "no trial '7' in the run" in capsys.readouterr().err
    assert main(["compare", f"{tmp_path}:7", "deit_ti"]) == 2
    assert f"{tmp_path} is not a run folder" in capsys.readouterr().err
