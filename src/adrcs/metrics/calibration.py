"""Calibration metrics: expected / maximum calibration error with a reliability-diagram table, and the
selective risk-coverage curve.

Single-label: equal-width bins over the top-class confidence; a bin's accuracy is the share of rows whose
argmax is the true class. Multi-label: every (row, label) sigmoid probability is one binary forecast; a
bin's "accuracy" is the share of those forecasts whose label is set (observed frequency), as in
torchmetrics' binary_calibration_error. Bins are [lo, hi), the last one [lo, 1]; ECE weights the
|accuracy - confidence| gap by the bin's share of forecasts, MCE is the largest gap over non-empty bins.
Equal to torchmetrics' (multiclass|binary)_calibration_error (norm "l1" / "max") except that
torchmetrics puts a confidence of exactly 1.0 into an extra bin of its own.

Hand-written: torchmetrics gives the two numbers but not the per-bin table the reliability plot needs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["calibration_report", "risk_coverage"]


def _array(x: Any, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _forecasts(probs: np.ndarray, labels: np.ndarray, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs that are binned: top-class / correct, or per-label p / label set."""
    if len(probs) == 0:
        return np.zeros(0), np.zeros(0)
    if multilabel:
        return probs.reshape(-1), labels.reshape(probs.shape).astype(np.float64).reshape(-1)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels.reshape(-1)).astype(np.float64)


def calibration_report(probs: Any, labels: Any, multilabel: bool = False, n_bins: int = 15) -> dict:
    """ECE, MCE and the reliability table of (N, K) probabilities against their labels.

    labels: int class per row (single-label) or a 0/1 (N, K) matrix (multi-label).
    Returns {"ece", "mce", "n" (forecasts binned), "n_bins", "multilabel", "bins": [{"lo", "hi", "count",
    "confidence", "accuracy"}]}; an empty bin has count 0 and confidence / accuracy None.
    """
    p = _array(probs, np.float64)
    p = p.reshape(len(p), -1) if p.size else np.zeros((0, 1))
    conf, outcome = _forecasts(p, _array(labels), multilabel)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # index of the bin [lo, hi) holding each confidence; 1.0 joins the last bin
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=outcome, minlength=n_bins)
    filled = counts > 0
    mean_conf = np.divide(conf_sum, counts, out=np.zeros(n_bins), where=filled)
    mean_acc = np.divide(acc_sum, counts, out=np.zeros(n_bins), where=filled)
    gaps = np.abs(mean_acc - mean_conf)
    total = counts.sum()
    bins = [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(counts[i]),
             "confidence": float(mean_conf[i]) if filled[i] else None,
             "accuracy": float(mean_acc[i]) if filled[i] else None} for i in range(n_bins)]
    return {
        "ece": float((gaps * counts).sum() / total) if total else 0.0,
        "mce": float(gaps[filled].max()) if filled.any() else 0.0,
        "n": int(total),
        "n_bins": int(n_bins),
        "multilabel": bool(multilabel),
        "bins": bins,
    }


def risk_coverage(confidence: Any, correct: Any) -> dict:
    """Selective risk against coverage when only the most confident maps are answered automatically.

    Rows are sorted by decreasing confidence; at coverage i/N the risk is the error share among the i most
    confident rows. Returns {"coverage": (N,), "risk": (N,) arrays, "aurc": area under the curve (mean
    risk over coverages; lower is better), "n"}. Empty input gives empty arrays and aurc None.
    """
    conf = _array(confidence, np.float64).reshape(-1)
    errors = 1.0 - _array(correct, np.float64).reshape(-1)
    if len(conf) == 0:
        return {"coverage": np.zeros(0), "risk": np.zeros(0), "aurc": None, "n": 0}
    order = np.argsort(-conf, kind="stable")
    answered = np.arange(1, len(conf) + 1, dtype=np.float64)
    risk = np.cumsum(errors[order]) / answered
    return {"coverage": answered / len(conf), "risk": risk, "aurc": float(risk.mean()), "n": int(len(conf))}
