"""Classification metrics for single-label and multi-label defect classification.

All functions return plain, JSON-ready dictionaries: only Python ``float``/``int``/
``bool``/``str``/``None``/``list``/``dict`` values, never numpy scalars and never NaN
(undefined values are reported as ``None``).  The metric math itself is delegated to
scikit-learn; this module is glue.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

__all__ = ["classification_report", "multilabel_report", "report_for"]


# --------------------------------------------------------------------------- helpers
def _to_numpy(x: Any) -> np.ndarray:
    """Convert array-likes (incl. torch tensors, possibly on GPU) to a numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _f(x: Any) -> float | None:
    """Plain float, or None when not finite / not computable."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f0(x: Any) -> float:
    """Plain float with undefined values mapped to 0.0 (for P/R/F1-style scores)."""
    v = _f(x)
    return 0.0 if v is None else v


def _binary_auc(y_bin: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC of one binary problem, None if it has no positives or no negatives."""
    y_bin = np.asarray(y_bin).astype(int)
    if y_bin.size == 0 or y_bin.min() == y_bin.max():
        return None
    try:
        return _f(roc_auc_score(y_bin, scores))
    except ValueError:  # e.g. NaN scores
        return None


def _auc_summary(per_class: dict[str, float | None]) -> float | None:
    vals = [v for v in per_class.values() if v is not None]
    return _f(np.mean(vals)) if vals else None


def _check_names(class_names: Sequence[str], n: int) -> list[str]:
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} entries but probs has {n} columns")
    return names


# --------------------------------------------------------------------------- single-label
def _per_class(names, p, r, f1, s) -> dict:
    """{name: {precision, recall, f1, support}} as plain Python numbers."""
    return {name: {"precision": _f0(p[i]), "recall": _f0(r[i]), "f1": _f0(f1[i]), "support": int(s[i])}
            for i, name in enumerate(names)}


def classification_report(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Single-label classification report.

    ``y_true``: int labels, shape (N,) (a one-hot (N, C) matrix is also accepted).
    ``probs``: class probabilities, shape (N, C); the prediction is ``argmax``.
    For C == 2 a 1-D vector of positive-class probabilities is accepted too.
    """
    probs = _to_numpy(probs).astype(float)
    y_true = _to_numpy(y_true)
    if probs.ndim == 1:
        probs = np.stack([1.0 - probs, probs], axis=1)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C), got shape {probs.shape}")
    if y_true.ndim == 2:  # one-hot
        y_true = y_true.argmax(axis=1)
    y_true = y_true.reshape(-1).astype(int)
    n, c = probs.shape
    if y_true.shape[0] != n:
        raise ValueError(f"y_true has {y_true.shape[0]} rows but probs has {n}")
    names = _check_names(class_names, c)
    labels = list(range(c))

    y_pred = probs.argmax(axis=1) if n else np.zeros(0, dtype=int)

    if n:
        acc = _f0(accuracy_score(y_true, y_pred))
        p, r, f1, s = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0
        )
        avgs = {
            avg: precision_recall_fscore_support(
                y_true, y_pred, labels=labels, average=avg, zero_division=0
            )[:3]
            for avg in ("macro", "weighted")
        }
        cm = confusion_matrix(y_true, y_pred, labels=labels)
    else:
        acc = 0.0
        p = r = f1 = np.zeros(c)
        s = np.zeros(c, dtype=int)
        avgs = {"macro": (0.0, 0.0, 0.0), "weighted": (0.0, 0.0, 0.0)}
        cm = np.zeros((c, c), dtype=int)

    per_class = _per_class(names, p, r, f1, s)
    auc_per_class = {name: _binary_auc(y_true == i, probs[:, i]) for i, name in enumerate(names)}

    return {
        "accuracy": acc,
        "macro_f1": _f0(avgs["macro"][2]),
        "weighted_f1": _f0(avgs["weighted"][2]),
        "macro_precision": _f0(avgs["macro"][0]),
        "macro_recall": _f0(avgs["macro"][1]),
        "weighted_precision": _f0(avgs["weighted"][0]),
        "weighted_recall": _f0(avgs["weighted"][1]),
        "per_class": per_class,
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "class_names": names,
        "roc_auc_macro": _auc_summary(auc_per_class),
        "roc_auc_per_class": auc_per_class,
        "n_samples": int(n),
        "multilabel": False,
    }


# --------------------------------------------------------------------------- multi-label
def multilabel_report(
    y_true: np.ndarray, probs: np.ndarray, class_names: list[str], threshold: float = 0.5
) -> dict:
    """Multi-label report. ``y_true`` 0/1 (N, L); ``probs`` sigmoid outputs (N, L);
    a label is predicted when ``prob >= threshold``."""
    probs = _to_numpy(probs).astype(float)
    y_true = _to_numpy(y_true)
    if probs.ndim == 1:
        probs = probs[:, None]
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    y_true = (y_true > 0.5).astype(int) if y_true.dtype.kind == "f" else (y_true != 0).astype(int)
    n, l = probs.shape
    if y_true.shape != probs.shape:
        raise ValueError(f"y_true shape {y_true.shape} != probs shape {probs.shape}")
    names = _check_names(class_names, l)
    y_pred = (probs >= threshold).astype(int)

    if n:
        exact = _f0(accuracy_score(y_true, y_pred))  # subset accuracy
        p, r, f1, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
        macro = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
        micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
        weighted_f1 = _f0(f1_score(y_true, y_pred, average="weighted", zero_division=0))
        hl = _f0(hamming_loss(y_true, y_pred))
        mcm = multilabel_confusion_matrix(y_true, y_pred)
    else:
        exact, hl, weighted_f1 = 0.0, 0.0, 0.0
        p = r = f1 = np.zeros(l)
        s = np.zeros(l, dtype=int)
        macro = micro = (0.0, 0.0, 0.0, None)
        mcm = np.zeros((l, 2, 2), dtype=int)

    per_label = _per_class(names, p, r, f1, s)
    auc_per_class = {name: _binary_auc(y_true[:, i], probs[:, i]) for i, name in enumerate(names)}

    return {
        "exact_match": exact,
        "accuracy": exact,
        "macro_f1": _f0(macro[2]),
        "micro_f1": _f0(micro[2]),
        "weighted_f1": weighted_f1,
        "macro_precision": _f0(macro[0]),
        "macro_recall": _f0(macro[1]),
        "micro_precision": _f0(micro[0]),
        "micro_recall": _f0(micro[1]),
        "hamming_loss": hl,
        "per_label": per_label,
        "per_class": per_label,
        "roc_auc_macro": _auc_summary(auc_per_class),
        "roc_auc_per_class": auc_per_class,
        "confusion_matrix": {
            name: [[int(v) for v in row] for row in mcm[i]] for i, name in enumerate(names)
        },
        "class_names": names,
        "n_samples": int(n),
        "multilabel": True,
        "threshold": float(threshold),
    }


def report_for(y_true, probs, class_names, multilabel: bool) -> dict:
    """Dispatch to :func:`multilabel_report` or :func:`classification_report`."""
    if multilabel:
        return multilabel_report(y_true, probs, class_names)
    return classification_report(y_true, probs, class_names)
