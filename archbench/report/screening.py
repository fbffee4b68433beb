"""The screening pool behind a screened search's trained trials (`archbench search --screen`): how
many candidates were drawn, how many met the constraints, which were trained, and where the
trained ones sit in the pool's spread of cost.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archbench.store.run import RunFolder

if TYPE_CHECKING:
    import pandas as pd

    from archbench.report.runs import RunInfo


@dataclass(frozen=True)
class ScreenPool:
    """One run's pool: every candidate (``chosen`` marks the trained ones), and its signal."""

    label: str
    path: Path
    frame: pd.DataFrame
    signal: str | None

    @property
    def feasible(self) -> pd.DataFrame:
        return self.frame[self.frame["violation"].isna()] if "violation" in self.frame else self.frame

    @property
    def chosen(self) -> pd.DataFrame:
        return self.frame[self.frame["chosen"].astype(bool)]

    def line(self) -> str:
        from archbench.quantity import format_quantity

        feasible, chosen = self.feasible, self.chosen
        text = (f"screened pool of {self.label}: {len(self.frame)} candidates drawn, {len(feasible)} feasible, "
                f"{len(chosen)} trained (best by non-dominated sorting, {self.signal or 'cost only'} for val_acc)")
        if not feasible.empty and not chosen.empty:
            lo, hi = feasible["macs"].min(), feasible["macs"].max()
            clo, chi = chosen["macs"].min(), chosen["macs"].max()
            text += (f"; MACs {format_quantity(lo)}–{format_quantity(hi)} in the pool, "
                     f"{format_quantity(clo)}–{format_quantity(chi)} among the trained")
        return text


def load_pools(runs: Sequence[RunInfo]) -> list[ScreenPool]:
    """The pools of the runs that screened (the others have none)."""
    import pandas as pd

    pools = []
    for run in runs:
        path = RunFolder(run.path).screen_pool_path
        if not path.exists():
            continue
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError):
            continue  # an unreadable pool leaves the report as it was without one
        signal = run.manifest.get("options", {}).get("screen_signal") if isinstance(run.manifest, dict) else None
        pools.append(ScreenPool(run.label, path, frame, signal))
    return pools


def pool_lines(runs: Sequence[RunInfo]) -> list[str]:
    return [pool.line() for pool in load_pools(runs)]


def draw_pool(ax: object, pools: Sequence[ScreenPool], metric: str, scale: float) -> None:
    """A rug along the x axis: every feasible candidate of the pools (grey), the trained ones (black)."""
    for pool in pools:
        if metric not in pool.frame:
            continue
        transform = ax.get_xaxis_transform()  # type: ignore[attr-defined]
        xs = pool.feasible[metric].dropna().astype(float) * scale
        ax.vlines(xs, 0.0, 0.035, transform=transform, colors="0.7", linewidth=0.6, zorder=1,  # type: ignore[attr-defined]
                  label=f"screened pool ({len(xs)})")
        chosen = pool.chosen[metric].dropna().astype(float) * scale
        ax.vlines(chosen, 0.0, 0.06, transform=transform, colors="black", linewidth=1.0, zorder=2)  # type: ignore[attr-defined]
