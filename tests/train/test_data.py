"""Datasets: digits, CIFAR pickle batches and image folders load into memory at the proxy size."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.train.data import DatasetError, iterate_batches, load_dataset, num_batches


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", img_size=16, seed=0)


def test_digits_shapes_split_and_normalisation(digits):
    assert digits.num_classes == 10
    assert len(digits.train_y) + len(digits.val_y) == 1797  # scikit-learn's bundled set, all of it
    assert len(digits.val_y) == pytest.approx(0.2 * 1797, abs=10)
    assert digits.train_x.shape[1:] == (3, 16, 16) and digits.train_x.dtype == torch.uint8
    # Grey replicated to three identical planes.
    assert torch.equal(digits.train_x[:, 0], digits.train_x[:, 2])
    # Stratified: every class in both splits.
    assert torch.bincount(digits.val_y, minlength=10).min() >= 30
    # Normalised with the training set's statistics.
    x = digits.normalize(digits.train_x)
    assert x.dtype == torch.float32
    assert x.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_split_is_fixed_by_seed(digits):
    again = load_dataset("digits", img_size=16, seed=0)
    other = load_dataset("digits", img_size=16, seed=1)
    assert torch.equal(again.val_x, digits.val_x) and torch.equal(again.val_y, digits.val_y)
    assert not torch.equal(other.val_x, digits.val_x)


def test_digits_grey_and_other_sizes():
    grey = load_dataset("digits", img_size=8, seed=0, in_chans=1)
    assert grey.train_x.shape[1:] == (1, 8, 8)
    # At the native 8×8 the pixels are the ink counts 0..16 scaled to 0..255.
    assert int(grey.train_x.max()) == 255 and set(torch.unique(grey.train_x).tolist()) <= {round(v * 255 / 16) for v in range(17)}


def write_cifar(root: Path, *, fine: bool, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A real-format CIFAR folder: python-pickle dicts with bytes keys, uint8 rows of 3072."""
    rng = np.random.default_rng(0)
    classes = 100 if fine else 10
    key = b"fine_labels" if fine else b"labels"
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, size=n)]
    test_data = rng.integers(0, 256, size=(n // 2, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, classes, size=n // 2)]
    root.mkdir(parents=True)
    names = ["train"] if fine else ["data_batch_1", "data_batch_2"]
    chunks = np.array_split(np.arange(n), len(names))
    for name, idx in zip(names, chunks):
        batch = {b"batch_label": b"x", b"data": data[idx], key: [labels[i] for i in idx], b"filenames": [b"f.png"] * len(idx)}
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(root / ("test" if fine else "test_batch"), "wb") as fh:
        pickle.dump({b"data": test_data, key: test_labels}, fh)
    meta_name, meta_key = ("meta", b"fine_label_names") if fine else ("batches.meta", b"label_names")
    with open(root / meta_name, "wb") as fh:
        pickle.dump({meta_key: [f"class{i}".encode() for i in range(classes)]}, fh)
    return data, np.array(labels)


def test_cifar10_batches(tmp_path):
    data, labels = write_cifar(tmp_path / "cifar-10-batches-py", fine=False)
    # PATH may be the unpacked folder or its parent.
    for path in (tmp_path / "cifar-10-batches-py", tmp_path):
        ds = load_dataset(f"cifar10:{path}", img_size=32, seed=0)
        assert ds.num_classes == 10 and ds.class_names[3] == "class3"
        assert len(ds.train_y) == 20 and len(ds.val_y) == 10  # test_batch is the held-out split
        # 32 px: no resize, so pixels are the file's bytes in (C, H, W) order.
        assert torch.equal(ds.train_x, torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        assert torch.equal(ds.train_y, torch.from_numpy(labels))
    small = load_dataset(f"cifar10:{tmp_path}", img_size=16, seed=0)
    assert small.train_x.shape == (20, 3, 16, 16) and small.train_x.dtype == torch.uint8


def test_cifar100_fine_labels(tmp_path):
    write_cifar(tmp_path / "c100", fine=True)
    ds = load_dataset(f"cifar100:{tmp_path / 'c100'}", img_size=24, seed=0)
    assert ds.num_classes == 100 and ds.train_x.shape == (20, 3, 24, 24)


def test_cifar_wrong_format_is_named(tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match=r"data_batch_1 is not a CIFAR python-pickle batch"):
        load_dataset(f"cifar10:{root}", img_size=32, seed=0)
    with open(root / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}, fh)
    with pytest.raises(DatasetError, match=r"lacks the keys b'data' and b'labels'"):
        load_dataset(f"cifar10:{root}", img_size=32, seed=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no CIFAR batches in"):
        load_dataset(f"cifar10:{empty}", img_size=32, seed=0)


def write_folder(root: Path, classes: dict[str, tuple[int, int, int]], per_class: int, size: tuple[int, int] = (40, 30)) -> None:
    for name, colour in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            Image.new("RGB", size, colour).save(root / name / f"img{i}{suffix}")


def test_image_folder_with_and_without_split(tmp_path):
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    write_folder(tmp_path / "flat", colours, per_class=5)
    ds = load_dataset(f"folder:{tmp_path / 'flat'}", img_size=16, seed=0)
    assert ds.class_names == ("blue", "red") and ds.num_classes == 2
    assert len(ds.train_y) + len(ds.val_y) == 10 and len(ds.val_y) == 2
    assert ds.train_x.shape[1:] == (3, 16, 16)
    # Decoded, resized and centre-cropped once: a red image is red everywhere.
    red = ds.train_x[ds.train_y == 1]
    assert red[:, 0].float().mean() > 250 and red[:, 2].float().mean() < 5

    write_folder(tmp_path / "split" / "train", colours, per_class=4)
    write_folder(tmp_path / "split" / "val", colours, per_class=2, size=(20, 50))
    ds = load_dataset(f"folder:{tmp_path / 'split'}", img_size=12, seed=0)
    assert len(ds.train_y) == 8 and len(ds.val_y) == 4 and ds.val_x.shape[1:] == (3, 12, 12)


def test_bad_specs_and_paths_are_named(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset.*digits, cifar10:PATH"):
        load_dataset("mnist", img_size=16, seed=0)
    with pytest.raises(DatasetError, match=f"folder {tmp_path / 'missing'} does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}", img_size=16, seed=0)
    with pytest.raises(DatasetError, match="missing PATH"):
        load_dataset("cifar10:", img_size=16, seed=0)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "only_class").mkdir()
    with pytest.raises(DatasetError, match="one sub-folder per class"):
        load_dataset(f"folder:{tmp_path / 'one'}", img_size=16, seed=0)
    bad = tmp_path / "bad"
    write_folder(bad, {"a": (0, 0, 0), "b": (1, 1, 1)}, per_class=2)
    (bad / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.jpg"):
        load_dataset(f"folder:{bad}", img_size=16, seed=0)
    assert issubclass(DatasetError, ValueError)


def test_batches_are_seeded_and_cover_the_set(digits):
    x, y = digits.train_x, digits.train_y
    first = [yb for _, yb in iterate_batches(x, y, 100, generator=torch.Generator().manual_seed(3))]
    again = [yb for _, yb in iterate_batches(x, y, 100, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert torch.equal(torch.cat(first).sort().values, y.sort().values)  # a permutation of all samples
    dropped = list(iterate_batches(x, y, 100, generator=torch.Generator().manual_seed(3), drop_last=True))
    assert len(dropped) == num_batches(len(y), 100, drop_last=True) == len(y) // 100
    assert all(len(yb) == 100 for _, yb in dropped)
    # Unshuffled: in order, short last batch kept.
    plain = list(iterate_batches(x, y, 1000))
    assert [len(yb) for _, yb in plain] == [1000, len(y) - 1000] and torch.equal(plain[0][0], x[:1000])


def test_train_images_keeps_class_shares_val_split_and_statistics():
    from archbench.train.data import load_dataset

    data = load_dataset("digits", img_size=8, seed=0)
    small = data.with_train_images(300, seed=1)
    assert len(small.train_y) == 300 and torch.equal(small.val_y, data.val_y) and small.mean == data.mean
    full, part = data.train_y.bincount().double() / len(data.train_y), small.train_y.bincount().double() / 300
    assert (full - part).abs().max() < 1 / 300 + 1e-9  # each class its share to within one image
    assert torch.equal(data.with_train_images(300, seed=1).train_x, small.train_x)  # seeded
    assert not torch.equal(data.with_train_images(300, seed=2).train_y, small.train_y)
    assert data.with_train_images(10_000) is data  # fewer images than asked: all of them
