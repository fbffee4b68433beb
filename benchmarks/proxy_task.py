"""Proxy-task difficulty and cost: K architectures of a space trained as search trials are (scaled by
TrainConfig.proxy_of, trained by train_proxy) on each dataset under a few proxy settings.

Run:  OMP_NUM_THREADS=1 python benchmarks/proxy_task.py [--archs 8] [--settings 32/4,32/2] [--threads 1]
      [--datasets digits,fashion-mnist-subset,fashion-mnist-subset@5000]
A setting is IMG/EPOCHS[/WIDTH/DEPTH]; DATASET@N trains on a stratified N-image slice of its training
part (same val set). A useful proxy task separates architectures: a wide val_acc spread, no ceiling.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import archbench
from archbench import space as spaces
from archbench.errors import UserError
from archbench.spec import ArchSpec
from archbench.train import Dataset, TrainConfig, TrainingError, train_proxy


@dataclass(frozen=True)
class Setting:
    img_size: int
    epochs: int
    width_mult: float = 0.25
    depth_mult: float = 0.34

    @property
    def label(self) -> str:
        return f"{self.img_size}px/{self.epochs}ep w{self.width_mult:g} d{self.depth_mult:g}"


@dataclass
class Trial:
    val_acc: float | None  # None: the proxy could not be built or trained (``error`` says why)
    seconds: float  # wall time of train_proxy: training and the per-epoch evaluations
    error: str = ""


def parse_setting(text: str) -> Setting:
    parts = text.split("/")
    if not 2 <= len(parts) <= 4:
        raise SystemExit(f"--settings: expected IMG/EPOCHS[/WIDTH/DEPTH], got {text!r}")
    return Setting(int(parts[0]), int(parts[1]), *(float(p) for p in parts[2:]))


def stratified_slice(data: Dataset, n: int, seed: int = 0) -> Dataset:
    """The first ``n // classes`` images of every class in a seeded shuffle; val and statistics kept."""
    g = torch.Generator().manual_seed(seed)
    per_class = n // data.num_classes
    keep = []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.train_y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    idx = torch.cat(keep).sort().values
    return dataclasses.replace(data, name=f"{data.name}@{n}", train_x=data.train_x[idx], train_y=data.train_y[idx])


def load(name: str, config: TrainConfig) -> Dataset:
    spec, _, limit = name.partition("@")
    data = dataclasses.replace(config, dataset=spec).load_dataset()
    return stratified_slice(data, int(limit)) if limit else data


def run_trial(arch: ArchSpec, data: Dataset, config: TrainConfig) -> Trial:
    start = time.perf_counter()
    try:
        # As a search trial does it: the proxy of the sampled architecture for this dataset.
        result = train_proxy(config.proxy_of(arch, data), data, config)
    except (UserError, TrainingError) as err:
        return Trial(None, time.perf_counter() - start, " ".join(str(err).split()))
    return Trial(result.val_acc, time.perf_counter() - start)


def spearman(a: list[float | None], b: list[float | None]) -> float | None:
    """Rank correlation of two accuracy lists over the architectures both trained (ties averaged)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 3:
        return None

    def ranks(v: np.ndarray) -> np.ndarray:
        order = v.argsort(kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r

    x, y = (ranks(np.array(col)) for col in zip(*pairs))
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return f"{fields.get('Model name', platform.processor()).strip()}, {fields.get('CPU(s)', '?').strip()} CPU(s) visible"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hybrid_vit")
    parser.add_argument("--archs", type=int, default=8, metavar="K", help="architectures, space.sample(seed) for seeds 0..K-1")
    parser.add_argument("--datasets", default="digits,fashion-mnist-subset", help="comma list; DATASET@N: stratified N-image training slice")
    parser.add_argument("--settings", default="32/4,16/3", help="comma list of IMG/EPOCHS[/WIDTH/DEPTH]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    settings = [parse_setting(s) for s in args.settings.split(",")]
    datasets = args.datasets.split(",")
    space = spaces.load(args.space)
    archs = [space.sample(seed) for seed in range(args.archs)]
    print(f"# {machine()}; torch {torch.__version__}, archbench {archbench.__version__}, python {sys.version.split()[0]}")
    print(f"# {args.space}: {args.archs} architectures (space.sample(seed), seeds 0..{args.archs - 1}); {args.threads} thread(s), {args.device}")
    for i, arch in enumerate(archs):
        print(f"#   a{i} {arch.name}: {arch.summary()}")

    results: dict[tuple[str, Setting], list[Trial]] = {}
    for setting in settings:
        base = TrainConfig(
            epochs=setting.epochs,
            proxy_img_size=setting.img_size,
            proxy_width_mult=setting.width_mult,
            proxy_depth_mult=setting.depth_mult,
            threads=args.threads,
            device=args.device,
        )
        for name in datasets:
            start = time.perf_counter()
            data = load(name, base)
            print(f"# {setting.label}: {data!r} loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            trials = []
            for i, arch in enumerate(archs):
                trial = run_trial(arch, data, base.for_trial(i))  # the seed a search's trial i would have
                trials.append(trial)
                acc = "fail" if trial.val_acc is None else f"{trial.val_acc:.3f}"
                print(f"#   {name} {setting.label} a{i}: {acc} in {trial.seconds:.1f} s {trial.error}", file=sys.stderr, flush=True)
            results[(name, setting)] = trials

    head = f"{'dataset':<28} {'setting':<22} " + " ".join(f"{'a' + str(i):>5}" for i in range(len(archs)))
    print(f"\nval_acc (%) per architecture; s/trial: mean wall time of train_proxy (train + per-epoch eval); × digits: s/trial ratio")
    print(head + f" {'min':>5} {'max':>5} {'spread':>6} {'s/trial':>8} {'× digits':>8} {'ρ digits':>8}")
    for setting in settings:
        reference = results.get(("digits", setting))
        ref_seconds = np.mean([t.seconds for t in reference if t.val_acc is not None]) if reference and any(t.val_acc is not None for t in reference) else None
        for name in datasets:
            trials = results[(name, setting)]
            accs = [t.val_acc for t in trials]
            ok = [a for a in accs if a is not None]
            cells = " ".join(f"{'fail' if a is None else f'{100 * a:.1f}':>5}" for a in accs)
            if ok:
                seconds = float(np.mean([t.seconds for t in trials if t.val_acc is not None]))
                ratio = f"{seconds / ref_seconds:.2f}" if ref_seconds else "–"
                rho = spearman(accs, [t.val_acc for t in reference]) if reference and name != "digits" else None
                stats = f"{100 * min(ok):>5.1f} {100 * max(ok):>5.1f} {100 * (max(ok) - min(ok)):>6.1f} {seconds:>8.1f} {ratio:>8} {'–' if rho is None else f'{rho:.2f}':>8}"
            else:
                stats = f"{'–':>5} {'–':>5} {'–':>6} {'–':>8} {'–':>8} {'–':>8}"
            print(f"{name:<28} {setting.label:<22} {cells} {stats}")
    errors = {t.error for trials in results.values() for t in trials if t.error}
    for error in sorted(errors):
        print(f"# fail: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
