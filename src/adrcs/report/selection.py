"""Feature-selection plots (matplotlib, headless "Agg" backend): convergence of the metaheuristic selectors."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adrcs.report.plots import save_figure  # noqa: E402

__all__ = ["plot_convergence"]


def plot_convergence(histories: Mapping[str, Sequence[float]], path: str | Path,
                     title: str = "Feature-selection convergence") -> Path:
    """Best fitness per iteration, one line per selector (e.g. `MetaheuristicSelector.history_`); saves a PNG.

    Creates missing parent directories and returns the written path; empty histories are skipped and with
    nothing to draw the figure says so instead of raising.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = 0
    for name, history in histories.items():
        values = np.asarray(list(history), dtype=float)
        if values.size == 0:
            continue
        iters = np.arange(1, values.size + 1)
        ax.plot(iters, values, marker="o" if values.size <= 30 else None, ms=3, lw=1.4, label=str(name))
        drawn += 1
    if drawn:
        ax.set_xlabel("iteration")
        ax.set_ylabel("best fitness")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no convergence history", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
