"""Trust plots (matplotlib, headless "Agg" backend): reliability diagram before / after temperature
scaling, and the selective risk-coverage curve.

Each function writes a PNG (parent folders created) and returns its :class:`~pathlib.Path`; with nothing
to plot it writes a small placeholder figure instead of raising, as :mod:`adrcs.report.plots` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adrcs.metrics.calibration import risk_coverage  # noqa: E402
from adrcs.report.plots import _placeholder, save_figure  # noqa: E402

__all__ = ["plot_reliability", "plot_risk_coverage"]

_STYLES = (("before", "tab:red", "o"), ("after", "tab:blue", "s"))


def _filled(report: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence, accuracy and count of the non-empty bins of a calibration_report."""
    bins = [b for b in report.get("bins", []) if b.get("count")]
    return (np.array([b["confidence"] for b in bins], dtype=float),
            np.array([b["accuracy"] for b in bins], dtype=float),
            np.array([b["count"] for b in bins], dtype=float))


def plot_reliability(before: dict, after: dict, path: str | Path, title: str | None = None) -> Path:
    """Reliability diagram of two `calibration_report` results (before / after scaling), ECE in the legend.

    Top: bin accuracy (observed frequency for multi-label) against mean bin confidence, with the diagonal
    of perfect calibration. Bottom: forecasts per bin.
    """
    reports = [(name, rep, colour, marker) for (name, colour, marker), rep in zip(_STYLES, (before, after))
               if rep and rep.get("n")]
    if not reports:
        return _placeholder(path, "no predictions to calibrate", title or "Reliability diagram")
    multilabel = any(rep.get("multilabel") for _, rep, _, _ in reports)
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(5.5, 6.2), sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfect calibration")
    width = 1.0 / max(rep["n_bins"] for _, rep, _, _ in reports)
    for i, (name, rep, colour, marker) in enumerate(reports):
        conf, acc, count = _filled(rep)
        ax.plot(conf, acc, marker=marker, color=colour, lw=1.5, ms=4,
                label=f"{name} (ECE={rep['ece']:.3f}, MCE={rep['mce']:.3f})")
        ax_count.bar(conf + (i - 0.5) * width * 0.4, count, width=width * 0.4, color=colour, alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed frequency" if multilabel else "accuracy")
    ax.set_title(title or ("Reliability diagram (per-label probabilities)" if multilabel
                           else "Reliability diagram (top-class confidence)"))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax_count.set_xlabel("probability" if multilabel else "confidence")
    ax_count.set_ylabel("count")
    ax_count.set_yscale("symlog")
    ax_count.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_risk_coverage(confidence: Any, correct: Any, path: str | Path, title: str | None = None) -> Path:
    """Selective risk (error share among the answered maps) against coverage, most confident answered first.

    The area under the curve (AURC, lower is better) and the overall error rate are in the legend.
    """
    curve = risk_coverage(confidence, correct)
    if curve["n"] == 0:
        return _placeholder(path, "no predictions", title or "Risk-coverage curve")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(curve["coverage"], curve["risk"], color="tab:blue", lw=1.6, label=f"AURC={curve['aurc']:.4f}")
    ax.axhline(curve["risk"][-1], color="grey", lw=0.8, ls=":", label=f"error at full coverage={curve['risk'][-1]:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, float(curve["risk"].max()) * 1.05))
    ax.set_xlabel("coverage (share of maps answered automatically)")
    ax.set_ylabel("selective risk (error share)")
    ax.set_title(title or "Risk-coverage curve")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
