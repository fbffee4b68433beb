"""Scatter plots of a fidelity study: reference accuracy against each analysed cheap signal, one panel
per signal, titled with its Kendall τ and bootstrap interval; seed-to-seed spread as error bars.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from archbench.fidelity.analysis import SIGNALS, arch_table

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from archbench.fidelity.analysis import FidelityAnalysis, SignalRow

LOG_SIGNALS = ("params", "macs", "synflow")  # drawn on a log axis when positive and spanning > 1 decade
_COLUMNS = 4
_STYLE = {"font.size": 8.0, "axes.titlesize": 8.5, "axes.labelsize": 8.0, "xtick.labelsize": 7.0, "ytick.labelsize": 7.0}


def scatter_figure(frame: pd.DataFrame, analysis: FidelityAnalysis) -> Figure:
    """The figure (Agg canvas, no pyplot): one axes per row of ``analysis``, in its order.

    Example:
        >>> import pandas as pd
        >>> from archbench.fidelity.analysis import analyse
        >>> rows = [dict(arch_hash=f"a{i}", fidelity=f, seed=0, status="ok", params=1e5 * (i + 1), val_acc=0.5 + i / 20)
        ...         for i in range(6) for f in ("proxy", "reference")]
        >>> frame = pd.DataFrame(rows)
        >>> len(scatter_figure(frame, analyse(frame, n_boot=100)).axes)
        2
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = arch_table(frame)
    rows = analysis.rows
    cols = max(1, min(len(rows), _COLUMNS))
    grid_rows = max(1, -(-len(rows) // cols))
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(3.3 * cols, 2.9 * grid_rows + 0.4))
        FigureCanvasAgg(fig)
        for i, row in enumerate(rows):
            _panel(fig.add_subplot(grid_rows, cols, i + 1), table, row)
        if not rows:
            fig.text(0.5, 0.5, "no signal could be analysed", ha="center", va="center")
        fig.suptitle(analysis.verdict(), x=0.01, ha="left", fontsize=8.0)
        fig.tight_layout()
    return fig


def scatter_png(frame: pd.DataFrame, analysis: FidelityAnalysis, path: str | Path | None = None, *, dpi: int = 110) -> bytes:
    """PNG bytes of `scatter_figure`; also written to ``path`` when one is given."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(_STYLE):
        scatter_figure(frame, analysis).savefig(buffer, format="png", dpi=dpi, metadata={"Software": "archbench fidelity"})
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _panel(ax: Axes, table: pd.DataFrame, row: SignalRow) -> None:
    from matplotlib.ticker import NullFormatter

    if row.signal not in table.columns:  # an analysis read back beside a different frame
        table = table.assign(**{row.signal: np.nan})
    both = table[[row.signal, "reference_acc", "reference_acc_std"]].dropna(subset=[row.signal, "reference_acc"])
    x = both[row.signal].to_numpy(float)
    y = both["reference_acc"].to_numpy(float) * 100.0
    spread = both["reference_acc_std"].to_numpy(float) * 100.0
    if np.isfinite(spread).any():  # reference trained with >= 2 seeds: show their spread
        ax.errorbar(x, y, yerr=np.nan_to_num(spread), fmt="none", ecolor="0.6", elinewidth=0.8, capsize=1.5, zorder=1)
    ax.scatter(x, y, s=16, color="tab:blue", edgecolor="white", linewidth=0.4, zorder=2)
    if row.signal in LOG_SIGNALS and x.size and (x > 0).all() and x.max() > 10.0 * x.min():
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks collide within a decade or two
    ax.set_title(f"{row.signal}  τ={row.interval()}", loc="left")
    orientation = "" if SIGNALS[row.signal].sign > 0 else " (lower predicts better)"
    ax.set_xlabel(f"{row.label}{orientation}")
    ax.set_ylabel("reference accuracy (%)")
    ax.grid(True, color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
