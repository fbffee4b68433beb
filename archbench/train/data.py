"""Proxy-training datasets held in memory: scikit-learn's digits (default, offline), Fashion-MNIST
(idx files, or a subset shipped inside archbench), CIFAR pickle batches and image folders, decoded
and resized once so the training loop only indexes tensors.

Specs: ``digits`` | ``fashion-mnist`` | ``fashion-mnist:PATH`` | ``fashion-mnist-subset`` |
``cifar10:PATH`` | ``cifar100:PATH`` | ``folder:PATH``. Images are kept as uint8 (N, C, H, W) at the
proxy resolution; :meth:`Dataset.normalize` turns a batch into normalised float32 on whatever device
the batch lives on (a quarter of the memory and host-to-device traffic of float storage).
"""
from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from archbench.errors import UserError

SPEC_FORMS = "digits, cifar10:PATH, cifar100:PATH, folder:PATH, fashion-mnist, fashion-mnist:PATH or fashion-mnist-subset"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# ITU-R 601 luma weights, the same as PIL's convert("L"), for in_chans=1 from colour sources.
_LUMA = (0.299, 0.587, 0.114)

# Where Debian's dataset-fashion-mnist package puts the four gzipped idx files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# In the order train images, train labels, test images, test labels; each may also end in .gz.
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Package data of archbench (archbench/data/), built by scripts/make_fashion_mnist_subset.py.
FASHION_MNIST_SUBSET = "fashion_mnist_subset.npz"
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # idx magic: 0, 0, type 0x08 (uint8), number of dims
_FASHION_MNIST_HINT = (
    "use 'fashion-mnist' with the Debian package dataset-fashion-mnist installed "
    f"(apt-get install -y dataset-fashion-mnist; files in {FASHION_MNIST_DIR}) or 'fashion-mnist:PATH' "
    f"with a folder holding {', '.join(FASHION_MNIST_FILES)} (each raw or .gz)"
)


class DatasetError(UserError):
    """A dataset spec is malformed, or its files are missing or in the wrong format.

    The message names the spec or the offending path, on one line, for the CLI to print as is.
    """


@dataclass(frozen=True, eq=False)  # tensors have no single truth value: compare by identity
class Dataset:
    """A classification dataset resident in memory at one resolution.

    Args:
        name: the spec it was loaded from, e.g. ``digits`` or ``cifar10:/data/cifar-10-batches-py``.
        train_x: uint8 images (N_train, C, H, W), already resized to ``img_size``.
        train_y: int64 labels (N_train,) in ``[0, num_classes)``.
        val_x: uint8 images (N_val, C, H, W).
        val_y: int64 labels (N_val,).
        num_classes: number of classes.
        mean: per-channel mean of ``train_x`` in [0, 1] units, used by :meth:`normalize`.
        std: per-channel standard deviation of ``train_x`` in [0, 1] units.
        class_names: one name a class, in label order.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()

    @property
    def img_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def in_chans(self) -> int:
        return int(self.train_x.shape[1])

    def with_train_images(self, n: int, *, seed: int = 0) -> Dataset:
        """At most ``n`` training images, drawn per class in proportion to the class sizes (seeded);
        the validation split and the normalisation statistics are kept, so scores stay comparable.

        Example:
            >>> data = load_dataset("digits", img_size=8)
            >>> small = data.with_train_images(500)
            >>> len(small.train_y), len(small.val_y) == len(data.val_y), small.train_y.bincount().tolist()[:3]
            (500, True, [49, 51, 49])
        """
        total = len(self.train_y)
        if n >= total:
            return self
        g = torch.Generator().manual_seed(seed)
        classes, counts = torch.unique(self.train_y, return_counts=True)
        # Largest-remainder apportionment: exactly n images, each class its share to within one.
        shares = counts.double() * n / total
        take = shares.floor().long()
        extra = torch.argsort(shares - take, descending=True, stable=True)[: n - int(take.sum())]
        take[extra] += 1
        keep = []
        for c, k in zip(classes.tolist(), take.tolist()):
            idx = torch.nonzero(self.train_y == c).flatten()
            keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
        order = torch.cat(keep).sort().values
        return replace(self, train_x=self.train_x[order], train_y=self.train_y[order])

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32 ``(x / 255 - mean) / std``, on the batch's own device."""
        scale, shift = _affine(self.mean, self.std, images.device)
        return torch.addcmul(shift, images.float(), scale)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.train_y)}, val={len(self.val_y)}, "
            f"classes={self.num_classes}, shape={tuple(self.train_x.shape[1:])})"
        )


def _affine(mean: Sequence[float], std: Sequence[float], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # One fused multiply-add per batch: x * (1 / (255 std)) + (-mean / std).
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * s), -m / s


def load_dataset(spec: str, *, img_size: int, seed: int = 0, val_fraction: float = 0.2, in_chans: int = 3) -> Dataset:
    """Load the dataset ``spec`` into memory at ``img_size`` × ``img_size`` pixels.

    Where the source ships a held-out split (Fashion-MNIST's ``t10k``, CIFAR's ``test_batch``/``test``,
    a folder's ``val/``) it is the validation set; otherwise ``val_fraction`` of the images,
    stratified by class and chosen by ``seed``, are held out. Grey sources are replicated to 3
    channels when ``in_chans`` is 3; colour sources are reduced to luma when ``in_chans`` is 1.

    Example:
        >>> data = load_dataset("digits", img_size=16, seed=0)
        >>> data.train_x.shape, data.num_classes
        (torch.Size([1438, 3, 16, 16]), 10)
        >>> fashion = load_dataset("fashion-mnist-subset", img_size=16)  # shipped inside archbench
        >>> len(fashion.train_y), len(fashion.val_y), fashion.class_names[:3]
        (10000, 2000, ('T-shirt/top', 'Trouser', 'Pullover'))

    Args:
        spec: ``digits``, ``fashion-mnist`` (Debian's dataset-fashion-mnist), ``fashion-mnist:PATH``
            (a folder of the four idx files), ``fashion-mnist-subset`` (10,000 + 2,000 images shipped
            with archbench), ``cifar10:PATH``, ``cifar100:PATH`` or ``folder:PATH``.
        img_size: side of the square images the proxy trains on.
        seed: chooses the held-out split where the source has none.
        val_fraction: share of each class held out when the source has no split, in (0, 1).
        in_chans: 1 or 3.

    Raises:
        DatasetError: (a ValueError) naming the spec or path: unknown spec, missing folder, wrong format.
    """
    if not isinstance(img_size, int) or img_size < 1:
        raise DatasetError(f"dataset '{spec}': img_size must be a positive integer, got {img_size!r}")
    if in_chans not in (1, 3):
        raise DatasetError(f"dataset '{spec}': in_chans must be 1 or 3, got {in_chans!r}")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"dataset '{spec}': val_fraction must be in (0, 1), got {val_fraction!r}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "digits":
        if arg:
            raise DatasetError(f"dataset '{spec}': 'digits' takes no path (it is bundled with scikit-learn)")
        images, labels, names = _digits()
        split = None
    elif kind == "fashion-mnist":
        split = _as_split(read_fashion_mnist(Path(arg).expanduser() if arg else FASHION_MNIST_DIR, spec=spec))
        images, labels, names = split[0], split[1], list(FASHION_MNIST_CLASSES)
    elif kind == "fashion-mnist-subset":
        if arg:
            raise DatasetError(f"dataset '{spec}': 'fashion-mnist-subset' takes no path (it ships inside archbench)")
        split = _as_split(_fashion_mnist_subset(spec))
        images, labels, names = split[0], split[1], list(FASHION_MNIST_CLASSES)
    elif kind in ("cifar10", "cifar100"):
        images, labels, names, split = _cifar(_existing_dir(spec, arg), spec, fine=kind == "cifar100")
    elif kind == "folder":
        images, labels, names, split = _folder(_existing_dir(spec, arg), spec, img_size)
    else:
        raise DatasetError(f"dataset '{spec}': unknown dataset (expected {SPEC_FORMS})")

    if split is None:
        train_idx, val_idx = _stratified_split(labels, val_fraction, seed, spec)
        split = (images[train_idx], labels[train_idx], images[val_idx], labels[val_idx])
    train_x, train_y, val_x, val_y = split
    train_x = _prepare(train_x, img_size, in_chans)
    val_x = _prepare(val_x, img_size, in_chans)
    mean, std = _channel_stats(train_x)
    return Dataset(
        name=spec,
        train_x=train_x,
        train_y=train_y,
        val_x=val_x,
        val_y=val_y,
        num_classes=len(names),
        mean=mean,
        std=std,
        class_names=tuple(names),
    )


# ---- batches ------------------------------------------------------------------------------------
def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of in-memory tensors, shuffled by ``generator`` (None: in order).

    Indexing happens on the tensors' own device, so a dataset moved to the GPU once never crosses
    the bus again. ``drop_last`` drops a short final batch (BatchNorm cannot train on one sample)
    unless it would leave no batch at all.

    Example:
        >>> images, labels = torch.zeros(10, 3, 8, 8), torch.arange(10)
        >>> [yb.tolist() for _, yb in iterate_batches(images, labels, 4)]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        >>> g = torch.Generator().manual_seed(0)
        >>> [yb.tolist() for _, yb in iterate_batches(images, labels, 4, generator=g, drop_last=True)]
        [[4, 1, 7, 5], [3, 9, 0, 8]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = int(labels.shape[0])
    if generator is not None:
        order = torch.randperm(n, generator=generator).to(images.device, non_blocking=True)
    else:
        order = None
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield images[start:start + batch_size], labels[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield images.index_select(0, idx), labels.index_select(0, idx)


def num_batches(n: int, batch_size: int, *, drop_last: bool) -> int:
    """How many batches :func:`iterate_batches` yields for ``n`` samples."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)


# ---- sources ------------------------------------------------------------------------------------
def _digits() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are 0..16 ink counts; scale to the 0..255 range of every other source.
    grey = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    images = torch.from_numpy(grey).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return images, labels, [str(c) for c in range(10)]


def fashion_mnist_paths(root: Path, *, spec: str = "fashion-mnist") -> list[Path]:
    """The four idx files of a Fashion-MNIST folder, in :data:`FASHION_MNIST_FILES` order.

    A raw file is preferred to its ``.gz`` (nothing to decompress). DatasetError, naming both
    ``fashion-mnist`` forms and the Debian package, when the folder or a file is missing.
    """
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"dataset '{spec}': folder {root} {what}; {_FASHION_MNIST_HINT}")
    paths = []
    for name in FASHION_MNIST_FILES:
        candidates = [root / name, root / f"{name}.gz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DatasetError(f"dataset '{spec}': {root} has no {name} (nor {name}.gz); {_FASHION_MNIST_HINT}")
        paths.append(found)
    return paths


def read_fashion_mnist(root: Path, *, spec: str = "fashion-mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST's official splits from the idx files in ``root``: uint8 images (N, H, W) and int64
    labels of the training and the test (t10k) split, 60,000 and 10,000 images of 28 × 28 in the real files.

    Args:
        root: a folder holding :data:`FASHION_MNIST_FILES`, each raw or gzipped.
        spec: the dataset spec the error messages name.

    Raises:
        DatasetError: naming the file: missing, truncated, wrong magic, counts or sizes that disagree.
    """
    train_images, train_labels, test_images, test_labels = fashion_mnist_paths(root, spec=spec)
    out: list[np.ndarray] = []
    for images_path, labels_path in ((train_images, train_labels), (test_images, test_labels)):
        images = _read_idx(images_path, _IDX_IMAGES, spec)
        labels = _read_idx(labels_path, _IDX_LABELS, spec).astype(np.int64)
        if len(labels) != len(images):
            raise DatasetError(f"dataset '{spec}': {labels_path} has {len(labels)} labels for the {len(images)} images of {images_path.name}")
        if len(labels) and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise DatasetError(f"dataset '{spec}': {labels_path} has labels outside 0..{len(FASHION_MNIST_CLASSES) - 1}")
        out += [images, labels]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DatasetError(f"dataset '{spec}': {train_images} holds {out[0].shape[1:]} images but {test_images} holds {out[2].shape[1:]}")
    return out[0], out[1], out[2], out[3]


def _read_idx(path: Path, magic: int, spec: str) -> np.ndarray:
    """The uint8 array of an idx file (LeCun's MNIST format): a big-endian magic, one big-endian
    uint32 a dimension, then the data; the size must match the header exactly."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; a cut-off stream, EOFError
        raise DatasetError(f"dataset '{spec}': cannot read {path} ({type(err).__name__}: {err})") from None
    kind = "images" if magic == _IDX_IMAGES else "labels"
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        found = f"magic 0x{raw[:4].hex()}" if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DatasetError(f"dataset '{spec}': {path} is not an idx {kind} file ({found}, expected magic 0x{magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"dataset '{spec}': {path} is truncated ({len(raw)} bytes, shorter than its {header}-byte header)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = math.prod(dims)
    if len(raw) != header + size:
        state = "truncated" if len(raw) < header + size else "longer than its header says"
        raise DatasetError(
            f"dataset '{spec}': {path} is {state} ({len(raw) - header} data bytes; "
            f"the header's {'×'.join(map(str, dims))} needs {size})"
        )
    # A copy: frombuffer views the immutable bytes, and torch wants writable arrays.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _fashion_mnist_subset(spec: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # importlib.resources, not __file__: the file is package data of wheels and zipped installs too.
    resource = resources.files("archbench") / "data" / FASHION_MNIST_SUBSET
    try:
        blob = resource.read_bytes()
    except OSError as err:
        raise DatasetError(
            f"dataset '{spec}': archbench/data/{FASHION_MNIST_SUBSET} is missing from this install ({err.strerror or err}); "
            "rebuild it with scripts/make_fashion_mnist_subset.py or use 'fashion-mnist'"
        ) from None
    with np.load(io.BytesIO(blob)) as npz:
        train_x, train_y, val_x, val_y = (npz[k] for k in ("train_x", "train_y", "val_x", "val_y"))
    for x, y in ((train_x, train_y), (val_x, val_y)):
        if x.dtype != np.uint8 or x.ndim != 3 or len(x) != len(y) or len(y) == 0 or int(y.max()) >= len(FASHION_MNIST_CLASSES):
            raise DatasetError(f"dataset '{spec}': archbench/data/{FASHION_MNIST_SUBSET} is damaged (x {x.dtype}{list(x.shape)}, {len(y)} labels)")
    return train_x, train_y.astype(np.int64), val_x, val_y.astype(np.int64)


def _as_split(arrays: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey (N, H, W) images and labels, train then val, as the (N, 1, H, W) tensors of a split."""
    train_x, train_y, val_x, val_y = (torch.from_numpy(a) for a in arrays)
    return train_x.unsqueeze(1), train_y, val_x.unsqueeze(1), val_y


_CIFAR_LAYOUT = {
    # kind -> (sub-folder the archive unpacks to, training files, held-out files, label key, meta file, names key)
    False: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", "batches.meta", b"label_names"),
    True: ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", b"fine_label_names"),
}


def _cifar(root: Path, spec: str, *, fine: bool) -> tuple[torch.Tensor, torch.Tensor, list[str], tuple | None]:
    subdir, train_files, test_files, label_key, meta_file, names_key = _CIFAR_LAYOUT[fine]
    if not (root / train_files[0]).exists() and (root / subdir / train_files[0]).exists():
        root = root / subdir  # PATH may be the folder the archive was unpacked into
    present_train = [root / f for f in train_files if (root / f).exists()]
    if not present_train:
        raise DatasetError(
            f"dataset '{spec}': no CIFAR batches in {root} (expected {', '.join(train_files)}"
            f"{' and ' + test_files[0] if test_files else ''}, the python-pickle version)"
        )
    train = [_cifar_batch(p, label_key, spec) for p in present_train]
    x = torch.from_numpy(np.concatenate([b[0] for b in train]))
    y = torch.from_numpy(np.concatenate([b[1] for b in train]))
    num_classes = 100 if fine else 10
    names = _cifar_names(root / meta_file, names_key, num_classes)
    present_test = [root / f for f in test_files if (root / f).exists()]
    split = None
    if present_test:
        test = [_cifar_batch(p, label_key, spec) for p in present_test]
        vx = torch.from_numpy(np.concatenate([b[0] for b in test]))
        vy = torch.from_numpy(np.concatenate([b[1] for b in test]))
        split = (x, y, vx, vy)
    bad = torch.cat([y, split[3]]) if split else y
    if int(bad.min()) < 0 or int(bad.max()) >= num_classes:
        raise DatasetError(f"dataset '{spec}': labels outside 0..{num_classes - 1} in {root}")
    return x, y, names, split


def _cifar_batch(path: Path, label_key: bytes, spec: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as fh:
            # The CIFAR batches are Python pickles; they are only read from a folder the user named.
            batch = pickle.load(fh, encoding="bytes")
    except Exception as err:  # truncated file, not a pickle, wrong protocol ...
        raise DatasetError(f"dataset '{spec}': {path} is not a CIFAR python-pickle batch ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch) if isinstance(batch, dict) else []
        raise DatasetError(
            f"dataset '{spec}': {path} lacks the keys b'data' and {label_key!r} (found: {', '.join(keys) or 'no dict'})"
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DatasetError(
            f"dataset '{spec}': {path} has data {data.dtype}{list(data.shape)} and {len(labels)} labels; "
            "expected uint8 (N, 3072) rows of 32×32 RGB and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_names(path: Path, key: bytes, num_classes: int) -> list[str]:
    try:
        with path.open("rb") as fh:
            meta = pickle.load(fh, encoding="bytes")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]
        if len(names) == num_classes:
            return names
    except Exception:  # the names are cosmetic: fall back to numbers
        pass
    return [str(i) for i in range(num_classes)]


def _folder(root: Path, spec: str, img_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str], tuple | None]:
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir():
        classes = _class_dirs(train_dir, spec)
        train_files = _image_files(train_dir, classes)
        x, y = _decode_all(train_files, img_size, spec)
        split = None
        if val_dir.is_dir():
            unknown = sorted(set(_class_dirs(val_dir, spec)) - set(classes))
            if unknown:
                raise DatasetError(f"dataset '{spec}': {val_dir} has classes missing from {train_dir}: {', '.join(unknown[:5])}")
            val_files = _image_files(val_dir, classes)
            if not val_files:
                raise DatasetError(f"dataset '{spec}': no images under {val_dir}")
            vx, vy = _decode_all(val_files, img_size, spec)
            split = (x, y, vx, vy)
        return x, y, classes, split
    classes = _class_dirs(root, spec)
    x, y = _decode_all(_image_files(root, classes), img_size, spec)
    return x, y, classes, None


def _class_dirs(root: Path, spec: str) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"dataset '{spec}': {root} should hold one sub-folder per class (found {len(classes)}); "
            "layout: PATH/<class>/<image> or PATH/train/<class>/<image> [+ PATH/val/<class>/<image>]"
        )
    return classes


def _image_files(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for dirpath, _, filenames in os.walk(folder):
            for f in sorted(filenames):
                if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."):
                    files.append((Path(dirpath) / f, label))
    return files


def _decode_all(files: list[tuple[Path, int]], img_size: int, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not files:
        raise DatasetError(f"dataset '{spec}': no image files ({', '.join(IMAGE_SUFFIXES[:4])} ...) in the class folders")
    out = np.empty((len(files), img_size, img_size, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        out[i] = _decode(files[i][0], img_size, spec)

    # PIL releases the GIL while decoding, so threads overlap the decode of many small files.
    workers = min(16, (os.cpu_count() or 1) * 2, len(files))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(decode, range(len(files))))
    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return images, labels


def _decode(path: Path, img_size: int, spec: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale directly: far cheaper for small proxies.
            img.draft("RGB", (img_size, img_size))
            img = img.convert("RGB")
            # Shorter side to img_size, then a centre crop: the usual evaluation transform.
            w, h = img.size
            scale = img_size / min(w, h)
            nw, nh = max(img_size, round(w * scale)), max(img_size, round(h * scale))
            img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
            left, top = (nw - img_size) // 2, (nh - img_size) // 2
            img = img.crop((left, top, left + img_size, top + img_size))
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"dataset '{spec}': cannot decode image {path} ({err})") from None


# ---- shared steps -------------------------------------------------------------------------------
def _existing_dir(spec: str, arg: str) -> Path:
    if not arg:
        raise DatasetError(f"dataset '{spec}': missing PATH (expected {SPEC_FORMS})")
    path = Path(arg).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset '{spec}': folder {path} does not exist")
    if not path.is_dir():
        raise DatasetError(f"dataset '{spec}': {path} is not a folder")
    return path


def _stratified_split(labels: torch.Tensor, val_fraction: float, seed: int, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out ``val_fraction`` of every class (at least one image a class), chosen by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    train_parts, val_parts = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < 2:
            raise DatasetError(f"dataset '{spec}': class {c} has {len(idx)} image(s); a train/val split needs at least 2")
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    # Sorted so the split, not the class loop, fixes the order (the loop shuffles per epoch anyway).
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def _prepare(images: torch.Tensor, img_size: int, in_chans: int) -> torch.Tensor:
    """Resize (once) to img_size and match in_chans; uint8 in, uint8 (N, in_chans, S, S) out."""
    images = images.contiguous()
    if images.shape[-1] != img_size or images.shape[-2] != img_size:
        chunks = []
        # Chunked so a 60k-image set never holds a full float copy at the new size.
        for start in range(0, images.shape[0], 4096):
            part = images[start:start + 4096].float()
            down = img_size < max(part.shape[-2:])
            part = F.interpolate(part, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=down)
            chunks.append(part.round_().clamp_(0, 255).to(torch.uint8))
        images = torch.cat(chunks) if chunks else images.new_zeros((0, images.shape[1], img_size, img_size))
    if in_chans == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1).contiguous()  # grey digits: the same plane three times
    elif in_chans == 1 and images.shape[1] == 3:
        w = torch.tensor(_LUMA).view(1, 3, 1, 1)
        images = (images.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    return images


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images in [0, 1] units.

    Accumulated in float64 chunks, so a large set never needs a full float copy.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], 4096):
        part = images[start:start + 4096].to(torch.float64)
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.square().sum(dim=(0, 2, 3))
    count = max(1, images.shape[0] * images.shape[2] * images.shape[3])
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(255e-3)  # a blank channel must not divide by zero
    return tuple(float(v) / 255.0 for v in mean), tuple(float(v) / 255.0 for v in std)
