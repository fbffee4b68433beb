"""The wheel carries what a non-editable install needs (the shipped spaces, the Fashion-MNIST subset
and its licence), and an install from it works from any folder (issue 12: `pip install .` used to
ship only the code, so `archbench search --space hybrid_vit` found no space)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in this environment")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools' build/ folder in the checkout could carry stale modules into
    # the wheel, and a test should not write into the source tree.
    source = out / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(".git", "build", "dist", "runs", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    # No build isolation: nothing may be downloaded (the build backend is this environment's setuptools).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    (built,) = out.glob("archbench-*.whl")
    return built


def test_the_wheel_ships_the_spaces_and_the_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    spaces = sorted(p.name for p in (REPO / "search_spaces").glob("*.yaml"))
    assert spaces and {"hybrid_vit.yaml", "tiny_cpu.yaml"} <= set(spaces)
    assert {f"archbench/search_spaces/{name}" for name in spaces} <= names
    assert {"archbench/data/fashion_mnist_subset.npz", "archbench/data/FASHION_MNIST_LICENSE", "archbench/data/FASHION_MNIST_SUBSET.md", "archbench/py.typed"} <= names
    shipped = zipfile.ZipFile(wheel).read("archbench/search_spaces/hybrid_vit.yaml")
    assert shipped == (REPO / "search_spaces" / "hybrid_vit.yaml").read_bytes()
    assert not any(n.startswith(("tests/", "runs/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_an_install_from_the_wheel_runs_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    """A virtual environment that sees this one's dependencies but installs archbench from the
    wheel (not editable): its commands find the shipped spaces from a folder far from the checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ARCHBENCH_SPACES_DIR")}

    def archbench(*args: str) -> str:
        done = subprocess.run([str(venv / "bin" / "archbench"), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    location = subprocess.run([str(python), "-c", "import archbench, sys; print(archbench.__file__)"], cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert location.startswith(str(venv)), location  # the wheel's copy, not the checkout
    listed = archbench("spaces")
    assert all(name in listed for name in ("hybrid_vit", "isotropic_vit", "tiny_cpu"))
    shown = archbench("space", "show", "hybrid_vit", "--samples", "0")
    assert "hybrid_vit" in shown
    assert list(elsewhere.iterdir()) == []  # looking writes nothing
