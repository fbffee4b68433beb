"""Sizes past archbench._validate's limits are refused before any work: one line, exit status 2,
within seconds, nothing written (issue 12)."""
from __future__ import annotations

import importlib
import time

import pytest
import torch

from archbench.cli import main

IMG = "(larger than any backbone is benchmarked at)"
BATCH = "(twice the largest published training batch)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "deit_ti", "--img-size", "100000"], f"--img-size must be between 1 and 4096 {IMG}, got 100000"),
        (["profile", "deit_ti", "--batch-size", "1000000000"], f"--batch-size must be between 1 and 65536 {BATCH}, got 1000000000"),
        (["search", "--proxy-img-size", "100000"], f"--proxy-img-size must be between 8 and 4096 {IMG}, got 100000"),
        (["search", "--batch-size", "1000000000"], f"--batch-size must be between 1 and 65536 {BATCH}, got 1000000000"),
        (["search", "--latency-batch-size", "1000000000"], f"--latency-batch-size must be between 1 and 65536 {BATCH}, got 1000000000"),
        (["fidelity", "--batch-size", "1000000000"], f"--batch-size must be between 1 and 65536 {BATCH}, got 1000000000"),
    ],
)
def test_a_huge_size_is_one_line_at_once(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # a search would write runs/ here
    started = time.monotonic()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == f"archbench: error: {message}\n" and out == ""
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


def test_the_limits_are_in_the_help(capsys):
    for command, flags in (("profile", ("1 to 4096", "1 to 65536")), ("search", ("8 to 4096", "1 to 65536"))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(f in text for f in flags), command


def test_a_model_too_large_for_this_machine_is_refused_before_it_is_built(capsys, repo):
    physical_memory = importlib.import_module("archbench.measure.profile").physical_memory  # the package's `profile` is the function

    path = repo / "tests" / "fixtures" / "bad_inputs" / "architectures" / "huge_model.yaml"
    assert main(["profile", str(path)]) == 2  # had it been built, 141 TB would have been asked of the allocator
    out, err = capsys.readouterr()
    gib = f"{physical_memory() / 2**30:.1f} GiB"
    assert err == f"archbench: error: {path}: 35.2 T parameters (141 TB of float32 weights) cannot be built on this machine ({gib} of memory)\n"
    assert out == ""


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 602112000000 bytes"),
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    ],
)
@pytest.mark.parametrize("measure", ["measure_latency", "measure_memory"])
def test_out_of_memory_while_measuring_names_the_size_asked_for(capsys, monkeypatch, error, measure):
    def fail(*_args, **_kwargs):
        raise error

    module = importlib.import_module("archbench.measure.profile")
    monkeypatch.setattr(module, "measure_latency", lambda *_args, **_kwargs: None)  # nothing is really measured at this size
    monkeypatch.setattr(module, measure, fail)
    assert main(["profile", "deit_ti", "--batch-size", "4096", "--img-size", "1024", "--threads", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "archbench: error: deit_ti: out of memory on cpu at batch 4096 × 1024×1024 px (--batch-size × --img-size): try a smaller batch or resolution\n"
    )


def test_other_runtime_errors_while_measuring_stay_bugs(monkeypatch):
    def fail(*_args, **_kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(importlib.import_module("archbench.measure.profile"), "measure_latency", fail)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["profile", "deit_ti", "--threads", "1"])
