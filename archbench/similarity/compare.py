"""Representation similarity of two architectures, layer by layer (Raghu et al., "Do Vision
Transformers See Like Convolutional Neural Networks?", NeurIPS 2021): minibatch linear CKA of every
block output of A against every block output of B on the proxy dataset's val split.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from archbench.errors import UserError
from archbench.similarity.cka import MIN_BATCH, MinibatchCKA
from archbench.similarity.layers import BlockOutputs

if TYPE_CHECKING:
    from torch import nn

    from archbench.spec import ArchSpec
    from archbench.train.config import TrainConfig
    from archbench.train.data import Dataset

from archbench.similarity import DEFAULT_BATCH  # noqa: E402 -- defined where the CLI reads it without torch


@dataclass(frozen=True)
class Operand:
    """One side of a comparison: what the user named, its architecture, and, for a trial of a run,
    the proxy settings it was trained with (None for zoo names and files)."""

    label: str
    arch: ArchSpec
    train: TrainConfig | None = None


def resolve_operand(text: str) -> Operand:
    """A zoo name, an architecture file, or ``RUN:TRIAL`` (a run folder and one of its trial ids).

    Raises:
        UserError: not a zoo name or readable file, or no such trial (or it recorded no architecture).
    """
    from archbench.builder import load_arch

    run, sep, trial = text.rpartition(":")
    if sep and run and Path(run).is_dir():
        return _trial_operand(text, Path(run), trial)
    return Operand(text, load_arch(text))


def _trial_operand(text: str, run: Path, trial: str) -> Operand:
    from archbench.spec import ArchSpec
    from archbench.store import TrialRecord, read_part
    from archbench.store.run import RunFolder
    from archbench.train.config import TrainConfig

    if not RunFolder.is_run(run):
        raise UserError(f"{text}: {run} is not a run folder (no manifest.json or trials/)")
    folder = RunFolder(run)
    candidates = [trial] + ([f"{int(trial):05d}"] if trial.isdigit() else [])  # searches number trials 00003
    for trial_id in candidates:
        try:
            path = folder.part_path(trial_id)
        except ValueError:
            continue
        if path.is_file():
            break
    else:
        known = ", ".join(folder.recorded_trial_ids()[:8]) or "none"
        raise UserError(f"{text}: no trial '{trial}' in the run {run} (trials: {known}…)")
    record = TrialRecord.from_row(read_part(path).to_pylist()[0])
    if not record.arch_json:
        raise UserError(f"{text}: the trial recorded no architecture (status {record.status})")
    arch = ArchSpec.from_dict(json.loads(record.arch_json), source=text)
    return Operand(text, arch, TrainConfig.from_record(record))


@dataclass(frozen=True)
class CKAResult:
    """The CKA matrix of a comparison (rows: blocks of A, columns: blocks of B) and how it was made."""

    a: str
    b: str
    layers_a: list[str]
    layers_b: list[str]
    cka: list[list[float]]
    images: int
    batch_size: int
    dataset: str
    img_size: int
    trained: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        # JSON has no NaN: a layer without signal is null.
        return {**asdict(self), "cka": [[v if math.isfinite(v) else None for v in row] for row in self.cka]}

    def to_rows(self) -> list[dict[str, Any]]:
        """One row a pair of layers (the Parquet form)."""
        return [
            {"a": self.a, "b": self.b, "layer_a": la, "layer_b": lb, "index_a": i, "index_b": j,
             "cka": self.cka[i][j] if math.isfinite(self.cka[i][j]) else None, "trained": self.trained}
            for i, la in enumerate(self.layers_a)
            for j, lb in enumerate(self.layers_b)
        ]

    def summary(self) -> str:
        """One line: what was compared on what, mean and best-matching layers, last block × last block."""
        m = torch.tensor(self.cka, dtype=torch.float64)
        finite = m[torch.isfinite(m)]
        when = "after proxy training" if self.trained else "at initialisation"
        head = (f"CKA {self.a} × {self.b} ({len(self.layers_a)} × {len(self.layers_b)} blocks, {when}, "
                f"{self.images} {self.dataset} images at {self.img_size} px)")
        if finite.numel() == 0:
            return f"{head}: no layer carried signal"
        best = int(torch.nan_to_num(m, nan=-1.0).argmax())
        i, j = divmod(best, m.shape[1])
        return (f"{head}: mean {float(finite.mean()):.2f}, max {float(m[i, j]):.2f} "
                f"({self.layers_a[i]} ~ {self.layers_b[j]}), last blocks {float(m[-1, -1]):.2f}")


def compare(
    a: Operand,
    b: Operand,
    config: TrainConfig,
    *,
    trained: bool = False,
    batch_size: int = DEFAULT_BATCH,
    max_images: int | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CKAResult:
    """Layer-by-layer linear CKA of the proxies of ``a`` and ``b`` (``config.proxy_of``) on the val
    split of ``config``'s dataset, at initialisation (seeded by ``config.seed``) or after training both
    proxies as ``config`` says (``trained``).

    Example:
        >>> from archbench import zoo
        >>> from archbench.train import TrainConfig
        >>> config = TrainConfig(dataset="digits", proxy_img_size=16, proxy_width_mult=0.25, proxy_depth_mult=0.25, device="cpu")
        >>> result = compare(Operand("deit_ti", zoo.get("deit_ti")), Operand("deit_ti", zoo.get("deit_ti")), config, batch_size=64)
        >>> result.layers_a == result.layers_b, round(result.cka[0][0], 6), result.images
        (True, 1.0, 320)

    Args:
        a, b: the two architectures (``resolve_operand``).
        config: dataset, proxy scaling, training recipe, seed and device of both sides.
        trained: train each proxy first (``train_proxy``); else compare at initialisation.
        batch_size: examples a CKA minibatch (>= 4); the last, shorter batch is dropped.
        max_images: use at most this many val images (None: all).
        on_stage: called with a short description as each stage starts (progress for the CLI).

    Raises:
        UserError: a bad ``batch_size``/``max_images``, or too few val images for one batch.
    """
    if batch_size < MIN_BATCH:
        raise UserError(f"--cka-batch: CKA's unbiased estimator needs at least {MIN_BATCH} examples a batch, got {batch_size}")
    started = time.perf_counter()
    say = on_stage or (lambda _text: None)
    say(f"loading {config.dataset}")
    data = config.load_dataset()
    images = len(data.val_y) if max_images is None else min(max_images, len(data.val_y))
    if images < batch_size:
        raise UserError(f"{config.dataset}: {images} val images is fewer than one CKA batch of {batch_size}; lower --cka-batch")
    dev = torch.device(config.resolved_device())
    models = []
    for operand in (a, b):
        say(f"{'training' if trained else 'building'} the proxy of {operand.label}")
        models.append(_proxy_model(operand.arch, data, config, trained).to(dev).eval())

    say("comparing")
    taps = [BlockOutputs(m) for m in models]
    cka = MinibatchCKA(len(taps[0].names), len(taps[1].names))
    used = images - images % batch_size
    with taps[0], taps[1], torch.inference_mode():
        for start in range(0, used, batch_size):
            x = data.normalize(data.val_x[start:start + batch_size].to(dev))
            outputs = []
            for model, tap in zip(models, taps):
                model(x)
                outputs.append(tap.outputs)
            cka.update(outputs[0], outputs[1])
    return CKAResult(
        a=a.label,
        b=b.label,
        layers_a=taps[0].names,
        layers_b=taps[1].names,
        cka=cka.compute().tolist(),
        images=cka.examples,
        batch_size=batch_size,
        dataset=config.dataset,
        img_size=data.img_size,
        trained=trained,
        seconds=time.perf_counter() - started,
    )


def _proxy_model(arch: ArchSpec, data: Dataset, config: TrainConfig, trained: bool) -> nn.Module:
    from archbench.builder import build
    from archbench.train.loop import train_proxy

    proxy = config.proxy_of(arch, data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the same seed gives the same initial weights, as in training
        model = build(proxy, img_size=data.img_size, num_classes=data.num_classes)
    if trained:
        train_proxy(model, data, config)  # trains the module in place
    return model


def heatmap_png(result: CKAResult, *, dpi: int = 120) -> bytes:
    """The CKA matrix as a heatmap (blocks of A up the side, blocks of B along the bottom), PNG bytes."""
    import io

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from archbench.similarity.layers import short_name

    la, lb = len(result.layers_a), len(result.layers_b)
    with matplotlib.rc_context({"font.size": 8.0}):
        fig = Figure(figsize=(min(12.0, 2.5 + 0.32 * lb), min(10.0, 2.0 + 0.32 * la)))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(result.cka, origin="lower", cmap="magma", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(lb), [short_name(n) for n in result.layers_b], rotation=90, fontsize=6.5)
        ax.set_yticks(range(la), [short_name(n) for n in result.layers_a], fontsize=6.5)
        ax.set_xlabel(f"{result.b} blocks")
        ax.set_ylabel(f"{result.a} blocks")
        when = "after proxy training" if result.trained else "at initialisation"
        ax.set_title(f"linear CKA, {when}\n{result.images} {result.dataset} images at {result.img_size} px", fontsize=8.0)
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label="CKA")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "archbench compare"})
    return buffer.getvalue()


def parquet_bytes(result: CKAResult) -> bytes:
    """The matrix in long form (one row a pair of layers) as Parquet bytes."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(result.to_rows()), buffer)
    return buffer.getvalue()


__all__ = ["DEFAULT_BATCH", "CKAResult", "Operand", "compare", "heatmap_png", "parquet_bytes", "resolve_operand"]
