"""Build archbench/data/fashion_mnist_subset.npz, the Fashion-MNIST subset shipped with archbench
(spec ``fashion-mnist-subset``): a stratified, seeded draw from the official train and t10k splits.

Run from the repository root (the output is byte-for-byte the same on every run with the same zlib):

    python scripts/make_fashion_mnist_subset.py                  # reads /usr/share/datasets/fashion-mnist
    python scripts/make_fashion_mnist_subset.py --source PATH    # any folder of the four idx files
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from archbench.train.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_SUBSET,
    fashion_mnist_paths,
    read_fashion_mnist,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "archbench" / "data" / FASHION_MNIST_SUBSET
# The zip's timestamps would otherwise make every build differ (np.savez stamps the current time).
_EPOCH = (1980, 1, 1, 0, 0, 0)


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of every class drawn without replacement, in ascending (source) order."""
    parts = []
    for c in range(len(FASHION_MNIST_CLASSES)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SystemExit(f"class {c} has {len(idx)} images, fewer than --per-class {per_class}")
        parts.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(parts))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz that np.load reads, with fixed timestamps and order so that equal arrays give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", type=Path, default=FASHION_MNIST_DIR, help="folder of the four idx files (raw or .gz)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    p.add_argument("--train-per-class", type=int, default=1000, help="images a class from the official train split")
    p.add_argument("--val-per-class", type=int, default=200, help="images a class from the official t10k split")
    p.add_argument("--seed", type=int, default=0, help="seed of numpy's default_rng (PCG64) that draws both parts")
    args = p.parse_args(argv)

    print(f"numpy {np.__version__}, source {args.source}")
    for path in fashion_mnist_paths(args.source, spec=f"fashion-mnist:{args.source}"):
        print(f"  sha256 {sha256(path.read_bytes())}  {path.name}")
    train_x, train_y, val_x, val_y = read_fashion_mnist(args.source, spec=f"fashion-mnist:{args.source}")
    rng = np.random.default_rng(args.seed)
    train_idx = stratified_indices(train_y, args.train_per_class, rng)
    val_idx = stratified_indices(val_y, args.val_per_class, rng)  # the same generator, drawn after train
    arrays = {
        "train_x": train_x[train_idx],
        "train_y": train_y[train_idx].astype(np.uint8),
        "val_x": val_x[val_idx],
        "val_y": val_y[val_idx].astype(np.uint8),
        # Positions in the official splits, so anyone holding the full set can check the subset.
        "train_index": train_idx.astype(np.uint16),
        "val_index": val_idx.astype(np.uint16),
    }
    write_npz(args.out, arrays)
    blob = args.out.read_bytes()
    print(f"wrote {args.out}: {len(blob):,} bytes ({len(blob) / 1e6:.2f} MB)")
    print(f"  sha256 {sha256(blob)}  {args.out.name}")
    for key, value in arrays.items():
        # Content hashes do not depend on the zlib build that compressed the file.
        print(f"  sha256 {sha256(np.ascontiguousarray(value).tobytes())}  {key} {value.dtype}{list(value.shape)}")
    counts = [np.bincount(arrays[k], minlength=len(FASHION_MNIST_CLASSES)).tolist() for k in ("train_y", "val_y")]
    print(f"  per class: train {counts[0]}, val {counts[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
