"""`archbench profile`, `zoo`, `reproduce`: JSON contract, one-line errors with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archbench.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_json_has_the_public_keys(capsys):
    code, out, _ = run_cli(capsys, "profile", "deit_ti", "--json", "--batch-size", "2", "--threads", "1", "--img-size", "64")
    data = json.loads(out)  # stdout is JSON and nothing else
    assert code == 0
    assert {"name", "img_size", "params", "macs", "flops_counter", "uncounted_ops", "latency_ms"} <= set(data)
    assert set(data["latency_ms"]) >= {"median", "p10", "p90", "repeats", "batch_size", "device", "threads", "dtype"}
    assert data["latency_ms"]["batch_size"] == 2 and data["latency_ms"]["threads"] == 1 and data["img_size"] == 64


def test_profile_no_latency_matches_timm_parameter_count(capsys):
    code, out, _ = run_cli(capsys, "profile", "deit_s", "--no-latency", "--json")
    data = json.loads(out)
    assert code == 0 and data["params"] == 22_050_664 and data["latency_ms"] is None
    assert data["macs"] == pytest.approx(4.60e9, rel=0.005) and data["uncounted_ops"] == {}


def test_profile_a_hand_written_file_and_a_timm_model(capsys, repo):
    code, out, _ = run_cli(capsys, "profile", str(repo / "examples" / "small_hybrid.yaml"), "--no-latency", "--json")
    assert code == 0 and json.loads(out)["name"] == "small_hybrid"
    code, out, _ = run_cli(capsys, "profile", "timm:resnet18", "--no-latency", "--json")
    assert code == 0 and json.loads(out)["params"] == 11_689_512


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "deit_x"], "unknown model 'deit_x'"),
        (["profile", "missing.yaml"], "missing.yaml: cannot read"),
        (["profile", "timm:not_a_model_at_all"], "unknown timm model 'not_a_model_at_all'"),
        (["profile", "deit_s", "--device", "tpu"], "--device: expected cpu or cuda"),
        (["profile", "deit_s", "--batch-size", "0"], "--batch-size must be between 1 and 65536"),
        (["profile", "deit_s", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["profile", "deit_s", "--threads", "-3"], "--threads must be >= 1, got -3"),
        (["reproduce", "swin_xl"], "unknown zoo preset 'swin_xl'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_malformed_and_invalid_files(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    missing = tmp_path / "missing_stem.yaml"
    missing.write_text("layout: pyramid\nstages: [{depth: 1, dim: 64, block: {type: mhsa, params: {heads: 2}}}]\n")
    code, _, err = run_cli(capsys, "profile", str(missing))
    assert code == 2 and "missing_stem.yaml: stem: missing: a stem is required" in err
    bad.write_text("layout: pyramid\nstem: patchify\nstages: [{depth: 1, dim: 64, block: {type: mhsa, params: {heads: 3}}}]\n")
    code, _, err = run_cli(capsys, "profile", str(bad))
    assert code == 2 and "bad.yaml: stages[0].block.params: dim 64 is not divisible by heads 3" in err
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xff\xfe garbage")
    code, _, err = run_cli(capsys, "profile", str(garbage))
    assert code == 2 and "garbage.json" in err and err.count("\n") == 1


def test_cuda_on_a_machine_without_cuda_is_a_clean_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(capsys, "profile", "deit_ti", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err


def test_zoo_json_lists_presets_with_published_figures(capsys):
    code, out, _ = run_cli(capsys, "zoo", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["deit_s"]["published_params_m"] == "22.05" and rows["deit_s"]["timm_name"] == "deit_small_patch16_224"


def test_reproduce_md_and_exit_status(capsys):
    code, out, _ = run_cli(capsys, "reproduce", "deit_ti", "--format", "md")
    assert code == 0 and "| deit_ti | 224 | 5.72 | 5.72 |" in out


def test_real_process_exit_status_and_stderr_without_traceback(repo):
    proc = subprocess.run([sys.executable, str(repo / "bench.py"), "profile", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["archbench: error: unknown model 'nope': not a zoo preset (see `archbench zoo`) and not a .yaml/.json file"]
