"""The promotion rule: a challenger replaces the champion only if it is not worse on the audit set.

Not worse = macro-F1 does not fall (beyond `f1_tolerance`, default 0) and no class's recall falls by
more than `recall_margin` (default 0.05), counting only classes with at least `min_support` audit
samples (recall on 2 samples is noise). Both models are scored on the same fixed audit set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import f1_score, recall_score


@dataclass
class Decision:
    """Outcome of a champion/challenger comparison (JSON-ready via `to_dict`)."""

    promote: bool
    reasons: list[str]
    champion: dict[str, Any] = field(default_factory=dict)
    challenger: dict[str, Any] = field(default_factory=dict)
    n_audit: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Macro-F1 over the classes present in `y_true`, accuracy, and recall per present class."""
    present = sorted(set(int(c) for c in y_true))
    recall = recall_score(y_true, y_pred, labels=present, average=None, zero_division=0)
    return {"macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
            "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
            "recall": {class_names[c]: float(r) for c, r in zip(present, recall)},
            "support": {class_names[c]: int((y_true == c).sum()) for c in present}}


def compare(y_true: np.ndarray, champion_pred: np.ndarray, challenger_pred: np.ndarray, class_names: Sequence[str],
            recall_margin: float = 0.05, f1_tolerance: float = 0.0, min_support: int = 5) -> Decision:
    """Decide whether the challenger may replace the champion (class indices into `class_names`)."""
    y = np.asarray(y_true, np.int64)
    if len(y) == 0:
        return Decision(False, ["no audit data: reviewed inspections are needed to compare models"])
    a = scores(y, np.asarray(champion_pred, np.int64), class_names)
    b = scores(y, np.asarray(challenger_pred, np.int64), class_names)
    reasons = []
    if b["macro_f1"] < a["macro_f1"] - f1_tolerance:
        reasons.append(f"macro-F1 falls from {a['macro_f1']:.4f} to {b['macro_f1']:.4f}")
    for c, r in a["recall"].items():
        if a["support"][c] >= min_support and b["recall"][c] < r - recall_margin:
            reasons.append(f"recall of {c} falls from {r:.3f} to {b['recall'][c]:.3f} (margin {recall_margin})")
    promote = not reasons
    if promote:
        reasons.append(f"macro-F1 {a['macro_f1']:.4f} -> {b['macro_f1']:.4f}, no class recall down by more than "
                       f"{recall_margin}")
    return Decision(promote, reasons, a, b, int(len(y)))
