"""Every bad input of the corpus, through the real CLI in its own process: exit status 2, exactly
the expected line on stderr (no traceback, no usage block), nothing on stdout, within 15 s of CPU
and 2 GiB, and nothing written — not to the existing runs it names, not where it runs (issue 12).

The cases run a few at a time (each is a Python process); CPU time, not wall time, is the bound,
so a busy machine cannot fail the test (tests/fixtures/bad_inputs/cli/expected.yaml lists them).
"""
from __future__ import annotations

import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bad_input_corpus import PLACES, Outcome, case_folders, cases, existing_runs, expand, run_case, snapshot

CASES = cases()
MAX_CPU_S = 15.0
MAX_PEAK_MIB = 2048.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outcome, str, list[str]]]:
    """By case: its outcome, the line expected of it (placeholders filled in) and what it left
    behind. The runs' contents are compared
    before and after every case that names them, one at a time, so a write is traced to its case."""
    root = tmp_path_factory.mktemp("corpus")
    runs = existing_runs(root)

    def one(index: int, line: str) -> tuple[Outcome, str, list[str]]:
        tmp, cwd = case_folders(root, index)
        named = [runs[key] for key in ("run", "fid") if "{" + key + "}" in line]
        before = [snapshot(folder) for folder in named]
        outcome = run_case(shlex.split(expand(line, **runs, tmp=tmp)), cwd)
        left = [f"{cwd}/{p.name}" for p in cwd.iterdir()] + [f"{tmp}/{p.name}" for p in tmp.iterdir() if p.name != "file.txt"]
        left += [f"{folder} changed" for folder, then in zip(named, before) if snapshot(folder) != then]
        return outcome, expand(CASES[index][1], **runs, tmp=tmp), left

    touching = [(i, line) for i, (line, _) in enumerate(CASES) if "{run}" in line or "{fid}" in line]
    others = [(i, line) for i, (line, _) in enumerate(CASES) if (i, line) not in touching]
    results = {line: one(i, line) for i, line in touching}  # serially: a change is this case's
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        results.update(zip((line for _, line in others), pool.map(lambda case: one(*case), others)))
    return results


def test_the_corpus_covers_every_command_and_is_large_enough() -> None:
    commands = {shlex.split(line)[0] for line, _ in CASES}
    from archbench.cli import SUBCOMMANDS

    assert {*SUBCOMMANDS, "space"} <= commands  # every command (`spaces` registers `space` too)
    assert len(CASES) >= 60 and len({line for line, _ in CASES}) == len(CASES)
    files = {p.name for p in PLACES["F"].iterdir()}
    assert files == {Path(expand(w)).name for line, _ in CASES for w in shlex.split(line) if w.startswith("{F}/")}  # no file unused


@pytest.mark.slow
@pytest.mark.parametrize(("line", "expected"), CASES, ids=[line for line, _ in CASES])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(corpus, line: str, expected: str) -> None:
    outcome, line_expected, left = corpus[line]
    assert outcome.code == 2 and outcome.out == "", (outcome.code, outcome.out, outcome.err)
    assert outcome.err == line_expected + "\n"
    assert "Traceback" not in outcome.err and left == []
    assert outcome.cpu_s < MAX_CPU_S and outcome.peak_mib < MAX_PEAK_MIB, (outcome.cpu_s, outcome.peak_mib)

