"""The `archbench space stats --plot` figure: histograms of parameters and MACs (log axes) with the
space's bounds marked, and how often each block type is drawn.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archbench.space._stats import SpaceStats


def stats_png(stats: SpaceStats, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (the CLI writes them atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    runnable = stats.runnable
    for ax, metric, label, bounds in (
        (axes[0], "params", "parameters", ("max_params",)),
        (axes[1], "macs", "MACs", ("max_macs", "min_macs")),
    ):
        values = np.array([float(getattr(s, metric)) for s in runnable])
        if values.size:
            bins = np.logspace(np.log10(max(values.min(), 1.0)), np.log10(max(values.max(), 2.0)), 30)
            ax.hist(values, bins=bins, color="#4c72b0")
            ax.set_xscale("log")
        for name in bounds:
            if name in stats.constraints:
                ax.axvline(stats.constraints[name], color="#c44e52", linestyle="--", label=f"{name} {stats.constraints[name]:.3g}")
                ax.legend(loc="upper left", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("samples")
    freq = stats.block_frequencies()
    names = list(freq)[::-1]
    axes[2].barh(names, [100 * freq[n]["blocks"] for n in names], color="#55a868")
    axes[2].set_xlabel("% of blocks drawn")
    fig.suptitle(f"{stats.space}: {len(stats.samples)} unconstrained samples ({len(runnable)} run)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": "archbench space stats"})
    return buffer.getvalue()
