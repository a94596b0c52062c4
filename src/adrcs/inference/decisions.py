"""One place where a prediction's label and confidence are decided, for the CLI, the reports and the service.

Single-label: the class of highest probability; confidence = that probability.
Multi-label: every label with probability >= `threshold`; confidence = the weakest of the per-label
decisions, i.e. min over labels of p (label set) or 1 - p (label not set). A map is only as certain as
its least certain label, so the review queue sees it when any one label is in doubt.
"""
from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.5


def decide(probs: np.ndarray, multilabel: bool, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class index per row (single-label) or a 0/1 int8 matrix (multi-label) from (N, K) probabilities."""
    probs = np.asarray(probs)
    return (probs >= threshold).astype(np.int8) if multilabel else probs.argmax(axis=1)


def confidence(probs: np.ndarray, multilabel: bool, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Per-row confidence of the decision `decide` takes (see the module docs), float64 in [0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return np.zeros(0)
    if not multilabel:
        return probs.max(axis=1)
    return np.where(probs >= threshold, probs, 1.0 - probs).min(axis=1)
