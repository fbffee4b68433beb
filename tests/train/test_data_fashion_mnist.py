"""Fashion-MNIST: idx files (raw or gzipped) read back exactly, one-line errors naming the file, the
subset shipped as package data, Debian's full set where installed, and the spec through the CLI."""
from __future__ import annotations

import fnmatch
import gzip
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from archbench.cli import main
from archbench.train import TrainConfig
from archbench.train import data as data_module
from archbench.train.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    FASHION_MNIST_SUBSET,
    DatasetError,
    load_dataset,
    read_fashion_mnist,
)
from search_helpers import TINY_SPACE

REPO = Path(__file__).resolve().parents[2]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file as LeCun's MNIST ships it: magic 0x000008NN (uint8, NN dims), big-endian dims, data."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fashion(root: Path, *, gz: bool | tuple[bool, ...], n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """The four standard files with random 28×28 images and labels 0..9; ``gz`` per file or for all."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    flags = gz if isinstance(gz, tuple) else (gz,) * 4
    for (name, array), zipped in zip(arrays.items(), flags):
        raw = idx_bytes(array)
        if zipped:
            (root / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (root / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False, (True, False, False, True)], ids=["gz", "raw", "mixed"])
def test_idx_files_read_back_exactly(tmp_path, gz):
    arrays = write_fashion(tmp_path, gz=gz)
    train_x, train_y, val_x, val_y = (arrays[name] for name in FASHION_MNIST_FILES)
    grey = load_dataset(f"fashion-mnist:{tmp_path}", img_size=28, in_chans=1)
    assert grey.train_x.shape == (20, 1, 28, 28) and grey.val_x.shape == (10, 1, 28, 28)
    assert grey.train_x.dtype == torch.uint8 and grey.train_y.dtype == torch.int64
    # At the native 28 px the pixels are the files' own; the t10k split is the validation set.
    assert np.array_equal(grey.train_x[:, 0].numpy(), train_x) and np.array_equal(grey.train_y.numpy(), train_y)
    assert np.array_equal(grey.val_x[:, 0].numpy(), val_x) and np.array_equal(grey.val_y.numpy(), val_y)
    assert grey.num_classes == 10 and grey.class_names == FASHION_MNIST_CLASSES
    assert grey.class_names[0] == "T-shirt/top" and grey.class_names[9] == "Ankle boot"
    rgb = load_dataset(f"fashion-mnist:{tmp_path}", img_size=16)
    assert rgb.train_x.shape == (20, 3, 16, 16) and torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 2])
    # The seed has nothing to split: the official split is used whatever it is.
    assert torch.equal(load_dataset(f"fashion-mnist:{tmp_path}", img_size=16, seed=5).val_y, rgb.val_y)


def test_a_raw_file_is_preferred_to_its_gz(tmp_path):
    write_fashion(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    assert len(read_fashion_mnist(tmp_path)[1]) == 20


def one_line_error(spec: str) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec, img_size=16)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_folder_names_both_forms_and_the_debian_package(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    message = one_line_error(f"fashion-mnist:{missing}")
    assert f"folder {missing} does not exist" in message
    for needle in ("'fashion-mnist'", "'fashion-mnist:PATH'", "dataset-fashion-mnist", "apt-get install -y dataset-fashion-mnist"):
        assert needle in message, message
    # The bare form reads Debian's folder.
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIR", missing)
    message = one_line_error("fashion-mnist")
    assert f"folder {missing} does not exist" in message and "'fashion-mnist:PATH'" in message
    # A folder without one of the four files names that file.
    write_fashion(tmp_path / "three", gz=True)
    (tmp_path / "three" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "has no t10k-labels-idx1-ubyte (nor t10k-labels-idx1-ubyte.gz)" in one_line_error(f"fashion-mnist:{tmp_path / 'three'}")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_broken_files_are_named(tmp_path, gz):
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write_fashion(tmp_path, gz=gz)
    path = tmp_path / name
    good = path.read_bytes()
    spec = f"fashion-mnist:{tmp_path}"

    def rewrite(raw: bytes) -> None:
        path.write_bytes(gzip.compress(raw) if gz else raw)

    raw = gzip.decompress(good) if gz else good
    rewrite(raw[:-100])
    assert f"{path} is truncated" in one_line_error(spec)
    rewrite(raw[:10])
    assert f"{path} is truncated" in one_line_error(spec)
    rewrite(raw + b"\0")
    assert f"{path} is longer than its header says" in one_line_error(spec)
    # A labels file where the images belong: the magic says so.
    rewrite(idx_bytes(np.zeros(20, dtype=np.uint8)))
    assert f"{path} is not an idx images file (magic 0x00000801, expected magic 0x00000803)" in one_line_error(spec)
    rewrite(b"")
    assert f"{path} is not an idx images file (0 bytes" in one_line_error(spec)
    if gz:
        path.write_bytes(good[: len(good) // 2])  # a download cut short
        assert f"cannot read {path} (EOFError" in one_line_error(spec)
        path.write_bytes(b"plain bytes, no gzip header")
        assert f"cannot read {path} (BadGzipFile" in one_line_error(spec)


def test_label_count_and_range_mismatches_are_named(tmp_path):
    write_fashion(tmp_path, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(9, dtype=np.uint8)))
    assert f"{labels} has 9 labels for the 10 images of t10k-images-idx3-ubyte" in one_line_error(f"fashion-mnist:{tmp_path}")
    labels.write_bytes(idx_bytes(np.full(10, 10, dtype=np.uint8)))
    assert f"{labels} has labels outside 0..9" in one_line_error(f"fashion-mnist:{tmp_path}")


# ---- the shipped subset -------------------------------------------------------------------------
SUBSET = resources.files("archbench") / "data" / FASHION_MNIST_SUBSET


def test_the_shipped_subset_is_small_balanced_and_from_both_official_splits():
    assert len(SUBSET.read_bytes()) <= 6_000_000
    with SUBSET.open("rb") as fh, np.load(fh) as npz:
        assert npz["train_x"].shape == (10_000, 28, 28) and npz["val_x"].shape == (2_000, 28, 28)
        assert np.bincount(npz["train_y"], minlength=10).tolist() == [1_000] * 10
        assert np.bincount(npz["val_y"], minlength=10).tolist() == [200] * 10
        # Positions in the official splits, each image once.
        assert len(np.unique(npz["train_index"])) == 10_000 and int(npz["train_index"].max()) < 60_000
        assert len(np.unique(npz["val_index"])) == 2_000 and int(npz["val_index"].max()) < 10_000


@pytest.mark.parametrize("img_size", [16, 28])
def test_the_shipped_subset_loads(img_size):
    data = load_dataset("fashion-mnist-subset", img_size=img_size)
    assert data.train_x.shape == (10_000, 3, img_size, img_size) and data.train_x.dtype == torch.uint8
    assert data.val_x.shape == (2_000, 3, img_size, img_size) and data.val_x.dtype == torch.uint8
    assert data.num_classes == 10 and data.class_names == FASHION_MNIST_CLASSES
    assert torch.bincount(data.val_y).tolist() == [200] * 10
    assert "takes no path" in one_line_error("fashion-mnist-subset:/x")


def test_train_config_loads_the_subset():
    data = TrainConfig(dataset="fashion-mnist-subset", proxy_img_size=16).load_dataset()
    assert data.name == "fashion-mnist-subset" and data.train_x.shape[1:] == (3, 16, 16)


def test_package_data_ships_the_subset_its_licence_and_provenance():
    # A wheel build is too slow for the suite: check pyproject's patterns cover every file instead.
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["archbench"]
    shipped = sorted(p.relative_to(REPO / "archbench").as_posix() for p in (REPO / "archbench" / "data").iterdir())
    assert shipped == ["data/FASHION_MNIST_LICENSE", "data/FASHION_MNIST_SUBSET.md", "data/fashion_mnist_subset.npz"]
    for name in shipped:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), (name, patterns)
    assert "Copyright (c) 2017 Zalando SE" in (REPO / "archbench" / "data" / "FASHION_MNIST_LICENSE").read_text()


# ---- Debian's full set --------------------------------------------------------------------------
@pytest.mark.slow  # about 2 s: 55 MB of idx files read and decompressed twice
@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_debian_files_hold_the_official_splits_and_the_subset_is_drawn_from_them():
    train_x, train_y, val_x, val_y = read_fashion_mnist(DEBIAN_DIR)
    assert train_x.shape == (60_000, 28, 28) and val_x.shape == (10_000, 28, 28)
    assert np.bincount(train_y).tolist() == [6_000] * 10 and np.bincount(val_y).tolist() == [1_000] * 10
    with SUBSET.open("rb") as fh, np.load(fh) as npz:
        assert np.array_equal(npz["train_x"], train_x[npz["train_index"]]) and np.array_equal(npz["train_y"], train_y[npz["train_index"]])
        assert np.array_equal(npz["val_x"], val_x[npz["val_index"]]) and np.array_equal(npz["val_y"], val_y[npz["val_index"]])
    data = load_dataset("fashion-mnist", img_size=28)
    assert len(data.train_y) == 60_000 and len(data.val_y) == 10_000 and data.train_x.shape[1:] == (3, 28, 28)


# ---- through the CLI ----------------------------------------------------------------------------
def test_search_help_lists_the_new_specs(capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert "fashion-mnist-subset" in text and "fashion-mnist:PATH" in text


def test_search_with_a_missing_fashion_folder_is_one_line(capsys, tmp_path):
    code = main(["search", "--space", str(TINY_SPACE), "--dataset", f"fashion-mnist:{tmp_path / 'nope'}", "--run-dir", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("archbench: error: ")
    assert "fashion-mnist:PATH" in lines[0] and "dataset-fashion-mnist" in lines[0]
    assert not (tmp_path / "run").exists()
