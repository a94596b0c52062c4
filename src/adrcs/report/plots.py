"""Evaluation and training plots (matplotlib, headless "Agg" backend).

Every function writes a PNG, creates missing parent directories and returns the
written :class:`~pathlib.Path`.  Functions degrade gracefully: when there is nothing
to plot they still write a small placeholder figure instead of raising.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

__all__ = [
    "plot_confusion_matrix",
    "plot_roc_curves",
    "plot_training_curves",
    "plot_multilabel_confusion",
    "write_report_plots",
]

_DPI = 110


# --------------------------------------------------------------------------- helpers
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def save_figure(fig, path: str | Path, dpi: int = _DPI, tight: bool = True) -> Path:
    """Write a figure as PNG (parent folders created) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def _placeholder(path: str | Path, message: str, title: str | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- confusion matrix
def plot_confusion_matrix(
    cm: list | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Heat-map of a confusion matrix (rows = true, cols = predicted).

    With ``normalize=True`` each row is divided by its sum (recall per class on the
    diagonal); cells are annotated with the normalised value and the raw count.
    """
    counts = np.asarray(cm, dtype=float)
    if counts.ndim != 2 or counts.size == 0:
        return _placeholder(path, "empty confusion matrix", title)
    names = [str(c) for c in class_names] or [str(i) for i in range(counts.shape[0])]
    if normalize:
        row_sums = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)
        vmax = 1.0
    else:
        values = counts
        vmax = max(float(values.max()), 1.0)

    k = counts.shape[0]
    side = min(max(4.5, 0.75 * k + 2.5), 16)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(counts.shape[1]))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names[: counts.shape[1]], rotation=45, ha="right")
    ax.set_yticklabels(names[:k])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))

    fontsize = 9 if k <= 10 else 7 if k <= 20 else 5
    for i in range(k):
        for j in range(counts.shape[1]):
            v = values[i, j]
            text = f"{v:.2f}\n({int(counts[i, j])})" if normalize else f"{int(counts[i, j])}"
            colour = "white" if v > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- ROC
def plot_roc_curves(
    y_true,
    probs,
    class_names: Sequence[str],
    path: str | Path,
    multilabel: bool = False,
) -> Path:
    """One-vs-rest ROC curve per class (AUC in legend) plus the macro-average curve.

    Classes without both positives and negatives in ``y_true`` are skipped.
    """
    probs = _to_numpy(probs).astype(float)
    y_true = _to_numpy(y_true)
    if probs.ndim == 1:
        probs = np.stack([1.0 - probs, probs], axis=1) if not multilabel else probs[:, None]
    n_cls = probs.shape[1]
    names = [str(c) for c in class_names] if class_names is not None else []
    if len(names) < n_cls:
        names += [str(i) for i in range(len(names), n_cls)]

    if multilabel:
        y_bin = (y_true.reshape(probs.shape) != 0).astype(int)
    else:
        y_int = y_true.argmax(axis=1) if y_true.ndim == 2 else y_true.reshape(-1).astype(int)
        y_bin = (y_int[:, None] == np.arange(n_cls)[None, :]).astype(int)

    grid = np.linspace(0.0, 1.0, 201)
    curves, aucs, tprs = [], [], []
    for i in range(n_cls):
        yi = y_bin[:, i]
        if yi.size == 0 or yi.min() == yi.max() or not np.all(np.isfinite(probs[:, i])):
            continue
        fpr, tpr, _ = roc_curve(yi, probs[:, i])
        auc = float(roc_auc_score(yi, probs[:, i]))
        curves.append((names[i], fpr, tpr, auc))
        aucs.append(auc)
        tprs.append(np.interp(grid, fpr, tpr))

    if not curves:
        return _placeholder(path, "ROC not computable\n(no class with both positives and negatives)",
                            "ROC curves")

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for idx, (name, fpr, tpr, auc) in enumerate(curves):
        ax.plot(fpr, tpr, lw=1.3, color=cmap(idx % cmap.N), label=f"{name} (AUC={auc:.3f})")
    mean_tpr = np.mean(tprs, axis=0)
    mean_tpr[0] = 0.0
    ax.plot(grid, mean_tpr, "k--", lw=2.2, label=f"macro (AUC={np.mean(aucs):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curves (one-vs-rest)" if not multilabel else "ROC curves (per label)")
    ax.legend(loc="lower right", fontsize=7 if len(curves) > 8 else 8)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- training curves
def _read_history(history) -> pd.DataFrame:
    if history is None:
        return pd.DataFrame()
    if isinstance(history, pd.DataFrame):
        return history.copy()
    try:
        return pd.read_csv(Path(history))
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError, OSError,
            UnicodeDecodeError, ValueError):
        return pd.DataFrame()


def _pick_loss_columns(cols: list[str]) -> list[str]:
    """Loss columns, preferring Lightning's ``*_epoch`` aggregate over ``*_step``/bare."""
    losses = [c for c in cols if "loss" in c.lower()]
    keep = []
    for c in losses:
        base = c[:-5] if c.endswith("_step") else c[:-6] if c.endswith("_epoch") else c
        if c.endswith("_epoch"):
            keep.append(c)
        elif f"{base}_epoch" in losses:
            continue  # epoch aggregate available
        elif c.endswith("_step") and base in losses:
            continue  # bare name available
        else:
            keep.append(c)
    return keep


def plot_training_curves(history: "pd.DataFrame | str | Path", path: str | Path) -> Path:
    """Plot losses (train/val) and validation metrics vs epoch from a Lightning
    ``CSVLogger`` ``metrics.csv`` (or its DataFrame). Sparse rows / NaNs are fine;
    missing columns are skipped; an empty or unreadable file yields a placeholder."""
    df = _read_history(history)
    if df.empty:
        return _placeholder(path, "no training history logged", "Training curves")

    df = df.apply(pd.to_numeric, errors="coerce")
    df = df.dropna(axis=1, how="all")
    if "epoch" in df.columns and df["epoch"].notna().any():
        xcol, xlabel = "epoch", "epoch"
    elif "step" in df.columns and df["step"].notna().any():
        xcol, xlabel = "step", "step"
    else:
        df = df.reset_index().rename(columns={"index": "_row"})
        xcol, xlabel = "_row", "row"

    cols = [c for c in df.columns if c not in {"epoch", "epoch_base", "step", "_row"}]
    loss_cols = _pick_loss_columns(cols)
    metric_cols = [c for c in cols if c.startswith("val_") and "loss" not in c.lower()]

    def series(col: str) -> pd.Series:
        sub = df[[xcol, col]].dropna()
        if sub.empty:
            return pd.Series(dtype=float)
        return sub.groupby(xcol)[col].mean()

    loss_series = {c: s for c in loss_cols if not (s := series(c)).empty}
    metric_series = {c: s for c in metric_cols if not (s := series(c)).empty}
    if not loss_series and not metric_series:
        return _placeholder(path, "no loss or validation metrics logged", "Training curves")

    panels = [p for p in (("Loss", loss_series), ("Validation metrics", metric_series)) if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (ptitle, data) in zip(axes[0], panels):
        for name, s in data.items():
            label = name[:-6] if name.endswith("_epoch") else name
            ax.plot(s.index.to_numpy(), s.to_numpy(), marker="o" if len(s) <= 30 else None,
                    ms=3, lw=1.4, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(ptitle)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- multilabel grid
def plot_multilabel_confusion(per_label_cms: dict, path: str | Path) -> Path:
    """Grid of per-label 2x2 confusion matrices ``{name: [[tn, fp], [fn, tp]]}``."""
    items = [(str(k), np.asarray(v, dtype=float)) for k, v in (per_label_cms or {}).items()]
    items = [(k, v) for k, v in items if v.shape == (2, 2)]
    if not items:
        return _placeholder(path, "no per-label confusion matrices", "Per-label confusion")
    n = len(items)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.7 * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for ax, (name, m) in zip(axes.ravel(), items):
        row_sums = m.sum(axis=1, keepdims=True)
        norm = np.divide(m, row_sums, out=np.zeros_like(m), where=row_sums > 0)
        ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=10,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks([0, 1])
        ax.set_yticks([0, 1])
        ax.set_xticklabels(["pred 0", "pred 1"], fontsize=8)
        ax.set_yticklabels(["true 0", "true 1"], fontsize=8)
        ax.set_title(name, fontsize=10)
    fig.suptitle("Per-label confusion matrices (row-normalised colour, counts)", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- all at once
def write_report_plots(report: dict, y_true, probs, out_dir: str | Path) -> list[Path]:
    """Write the standard evaluation figures for a report from ``report_for``.

    Single-label: ``confusion_matrix.png`` (row-normalised) and ``roc_curves.png``.
    Multi-label: ``confusion_matrix.png`` (true-label x predicted-label co-occurrence
    counts at the report's threshold), ``roc_curves.png`` and
    ``per_label_confusion.png`` (grid of per-label 2x2 matrices).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(report.get("class_names") or [])
    multilabel = bool(report.get("multilabel", False))
    paths: list[Path] = []

    if multilabel:
        yt = (_to_numpy(y_true) != 0).astype(int)
        pr = _to_numpy(probs).astype(float)
        thr = float(report.get("threshold", 0.5))
        if yt.ndim == 2 and pr.shape == yt.shape:
            cooc = yt.T @ (pr >= thr).astype(int)
        else:
            cooc = np.zeros((len(names), len(names)), dtype=int)
        paths.append(plot_confusion_matrix(
            cooc, names, out_dir / "confusion_matrix.png", normalize=False,
            title="Label co-occurrence (rows = true label, cols = predicted label)"))
        paths.append(plot_roc_curves(y_true, probs, names, out_dir / "roc_curves.png",
                                     multilabel=True))
        paths.append(plot_multilabel_confusion(report.get("confusion_matrix") or {},
                                               out_dir / "per_label_confusion.png"))
    else:
        paths.append(plot_confusion_matrix(report.get("confusion_matrix") or [], names,
                                           out_dir / "confusion_matrix.png", normalize=True))
        paths.append(plot_roc_curves(y_true, probs, names, out_dir / "roc_curves.png",
                                     multilabel=False))
    return paths
