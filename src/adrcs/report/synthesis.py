"""Plots for synthesizers: training curves and real-vs-synthetic map grids."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from adrcs.report.plots import save_figure  # noqa: E402

# off-wafer, good die, failing die
DIE_COLORS = ListedColormap(["#ffffff", "#9fc5a8", "#c0392b"])


def plot_synth_history(history: pd.DataFrame, path: str | Path, title: str = "synthesizer training") -> Path:
    """One panel per logged quantity (MSE; or Wasserstein estimate, penalties, losses) over steps."""
    cols = [c for c in history.columns if c != "step"]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.0), squeeze=False)
    for ax, c in zip(axes[0], cols):
        ax.plot(history["step"], history[c], lw=0.8, alpha=0.4)
        smooth = history[c].rolling(max(1, len(history) // 30), min_periods=1).mean()
        ax.plot(history["step"], smooth, lw=1.5)
        ax.set_title(c.replace("_", " "))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, tight=False)


def plot_real_vs_synthetic(real: Mapping[str, np.ndarray], synthetic: Mapping[str, np.ndarray], path: str | Path,
                           per_side: int = 6, title: str = "real (left) vs synthetic (right)") -> Path:
    """One row per class: `per_side` real maps, a gap, `per_side` synthetic maps (die codes 0/1/2)."""
    classes = list(synthetic)
    cols = 2 * per_side + 1
    fig, axes = plt.subplots(len(classes), cols, figsize=(0.9 * cols + 1.2, 0.95 * len(classes) + 0.6), squeeze=False)
    for r, c in enumerate(classes):
        sets = [(real.get(c, np.zeros((0, 1, 1), np.uint8)), 0), (synthetic[c], per_side + 1)]
        for ax in axes[r]:
            ax.axis("off")
        for maps, offset in sets:
            for k in range(min(per_side, len(maps))):
                axes[r, offset + k].imshow(maps[k], cmap=DIE_COLORS, vmin=0, vmax=2, interpolation="nearest")
        axes[r, 0].text(-0.15, 0.5, c, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.93, bottom=0.01, wspace=0.05, hspace=0.08)
    return save_figure(fig, path, dpi=100, tight=False)


def plot_defect_patches(context: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray],
                        synthetic: Mapping[str, np.ndarray], path: str | Path,
                        title: str = "defect GAN: context | real | synthetic (same context)") -> Path:
    """One row per class: up to 6 triples of (context, real defect patch, GAN patch on that context)."""
    classes = list(synthetic)
    per = max((len(np.asarray(synthetic[c])) for c in classes), default=1)
    fig, axes = plt.subplots(len(classes), 3 * per, figsize=(1.1 * 3 * per, 1.2 * len(classes) + 0.5),
                             squeeze=False)
    for r, c in enumerate(classes):
        for j in range(per):
            for k, src in enumerate((context, real, synthetic)):
                ax = axes[r][3 * j + k]
                ax.axis("off")
                arr = np.asarray(src[c])
                if j < len(arr):
                    img = arr[j]
                    img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
                    ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[r][0].set_title(c, fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, tight=False)
