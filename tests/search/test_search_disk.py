"""A run folder on a full disk or a read-only file system: one line naming the folder, exit 2,
what was written kept, and the run resumes once the disk has room (issue 12). The folder lives on
a small tmpfs mounted for the test: that needs root with CAP_SYS_ADMIN, else the test skips."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bad_input_corpus import snapshot

from archbench.cli import main
from search_helpers import TINY_SPACE

pytestmark = pytest.mark.slow  # searches on the shared local Ray


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not permitted'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def search(capsys, run: Path, *extra: str) -> tuple[int, list[str]]:
    code = main(["search", "--space", str(TINY_SPACE), "--objectives", "params:min,macs:min", "--run-dir", str(run), "--no-live", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_a_full_disk_and_a_read_only_mount_are_one_line_and_lose_nothing(ray_local, small_disk, capsys):
    run = small_disk / "run"
    assert search(capsys, run, "--trials", "2")[0] == 0
    parts = sorted(p.name for p in (run / "trials").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]

    filler = fill(small_disk)
    kept = snapshot(run / "trials")
    code, err = search(capsys, run, "--resume", "--trials", "3")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"archbench: error: {run}: cannot write the run folder (no space left on the device")
    assert err[0].endswith("what was written is kept: fix it and continue with --resume")
    assert snapshot(run / "trials") == kept

    code, err = search(capsys, small_disk / "fresh", "--trials", "1")  # a new run on the full disk
    assert code == 2 and len(err) == 1 and err[0].endswith("nothing was kept: fix it and run the command again"), err
    assert not (small_disk / "fresh").exists()

    filler.unlink()
    assert search(capsys, run, "--resume", "--trials", "3")[0] == 0  # room again: the run completes
    assert len(list((run / "trials").glob("part-*.parquet"))) == 3

    # The same file system seen through a read-only bind mount (the live one may be busy).
    view = small_disk.parent / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(small_disk), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        kept = snapshot(run)
        code, err = search(capsys, view / "run", "--resume", "--trials", "4")
        assert code == 2 and err == [
            f"archbench: error: {view / 'run'}: cannot write the run folder (read-only file system: {view / 'run' / '.lock'}); "
            "what was written is kept: fix it and continue with --resume"
        ]
        code, err = search(capsys, view / "fresh", "--trials", "1")
        assert code == 2 and err == [
            f"archbench: error: {view / 'fresh'}: cannot write the run folder (read-only file system: {view / 'fresh'}); "
            "nothing was kept: fix it and run the command again"
        ]
        assert snapshot(run) == kept and not (small_disk / "fresh").exists()
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
