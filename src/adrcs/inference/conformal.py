"""Split conformal prediction sets from calibrated probabilities (LAC score, Sadinle et al. 2019).

Fitted on the calibration split (never the training split); with exchangeable data the true answer is in
the set with probability >= 1 - alpha.

Single-label: score s = 1 - p(true class); q = the ceil((n + 1)(1 - alpha))-th smallest calibration
score (the finite-sample quantile ceil((n+1)(1-alpha))/n); class k is in a map's set when 1 - p_k <= q.
Class-conditional (Mondrian): one q per class from that class's own calibration maps, so every class gets
>= 1 - alpha coverage. A class with fewer than `min_class_count` calibration maps (default: the fewest
for which its own q is finite, ceil(1/alpha) - 1 = 19 at alpha 0.05) falls back to the overall q, and for
it only the marginal guarantee holds; `fallback` lists such classes.
Too few calibration maps overall (n < ceil(1/alpha) - 1, or none) give q = inf: every class in every set.

Multi-label: each label is a binary problem over the states {absent, present} with score 1 - p(true
state) (p = sigmoid probability for present, 1 - p for absent); q per label, or per (label, state) with
class_conditional=True, which guarantees the coverage of present labels (defects) separately from the
far more common absent ones. API: `sets(probs)` is (N, K, 2) bool, [..., 0] absent in the set,
[..., 1] present in the set; `decided(probs)` is (N, K) int8: 1 present, 0 absent, -1 undecided (both
states in the set, or neither, which happens when q < 0.5 and p is near 0.5: the map needs a review).

Hand-written, MAPIE evaluated (v1.6, BSD-3): SplitConformalClassifier(prefit=True, conformity_score="lac")
can be fed stored probabilities through an identity sklearn estimator and gives the same sets as this
formula (tests/inference/test_conformal.py checks it where mapie is installed), but (1) its fitted state is
an sklearn / MAPIE object graph, not plain data for weights_only checkpoints, and the one number it learns
(q) is only reachable through private attributes (_mapie_classifier.conformity_score_function_.quantiles_),
so a reloaded checkpoint would apply the formula by hand anyway; (2) it raises ValueError when n < 1/alpha -
1 instead of returning the valid all-classes set, which small classes and small calibration splits need; (3)
it has neither Mondrian (class-conditional) sets nor per-label multi-label sets. So it would cover one
np.quantile call.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["ConformalSets", "conformal_quantile", "coverage_report"]

_EPS = 1e-8  # a calibration map's own score must land inside its set despite float rounding (as MAPIE)


def _array(x: Any, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _matrix(probs: Any, empty_columns: int) -> np.ndarray:
    """(N, K) float64 probabilities; an empty input without columns becomes (0, empty_columns)."""
    p = _array(probs, np.float64)
    if p.ndim == 2:
        return p
    return p.reshape(len(p), -1) if p.size else np.zeros((0, empty_columns))


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest score; inf when that rank exceeds n (too few scores)."""
    n = len(scores)
    rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)  # tolerance: (n+1)(1-alpha) may be an integer
    if n == 0 or rank > n:
        return math.inf
    return float(np.partition(np.asarray(scores, dtype=np.float64), rank - 1)[rank - 1])


class ConformalSets:
    """Split conformal prediction sets; see the module docs for the single- and multi-label API."""

    def __init__(self, alpha: float = 0.05, class_conditional: bool = False, multilabel: bool = False,
                 min_class_count: int | None = None) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.class_conditional = bool(class_conditional)
        self.multilabel = bool(multilabel)
        # smallest group whose own quantile is finite: (n + 1) * alpha >= 1
        self.min_class_count = (int(min_class_count) if min_class_count is not None
                                else max(1, math.ceil(1.0 / self.alpha - 1.0 - 1e-9)))
        self.quantiles: np.ndarray | None = None  # (K,) single-label; (K, 2) [absent, present] multi-label
        self.fallback: list = []  # classes (single) or [label, state] pairs (multi) using the overall q
        self.n_calib = 0

    # ------------------------------------------------------------------ fitting
    def fit(self, probs: Any, labels: Any) -> "ConformalSets":
        """Fit the quantile(s) on calibration probabilities (N, K) and labels; returns self.

        labels: int class per row (single-label) or a 0/1 (N, K) matrix (multi-label).
        """
        p = _matrix(probs, 0)
        y = _array(labels)
        self.n_calib = len(p)
        self.fallback = []
        if self.multilabel:
            self._fit_multilabel(p, y.reshape(p.shape).astype(bool))
        else:
            self._fit_single(p, y.reshape(-1).astype(np.int64))
        return self

    def _fit_single(self, p: np.ndarray, y: np.ndarray) -> None:
        scores = 1.0 - p[np.arange(len(p)), y] if len(p) else np.zeros(0)
        overall = conformal_quantile(scores, self.alpha)
        q = np.full(p.shape[1], overall)
        if self.class_conditional:
            for k in range(p.shape[1]):
                mine = scores[y == k]
                if len(mine) >= self.min_class_count:
                    q[k] = conformal_quantile(mine, self.alpha)
                else:
                    self.fallback.append(k)
        self.quantiles = q

    def _fit_multilabel(self, p: np.ndarray, y: np.ndarray) -> None:
        scores = np.where(y, 1.0 - p, p)  # 1 - p(true state) per (row, label)
        q = np.empty((p.shape[1], 2))
        for j in range(p.shape[1]):
            q[j, :] = conformal_quantile(scores[:, j], self.alpha)
            if not self.class_conditional:
                continue
            for state in (0, 1):
                mine = scores[y[:, j] == bool(state), j]
                if len(mine) >= self.min_class_count:
                    q[j, state] = conformal_quantile(mine, self.alpha)
                else:
                    self.fallback.append([j, state])
        self.quantiles = q

    # ------------------------------------------------------------------ applying
    def _check(self, p: np.ndarray) -> None:
        if self.quantiles is None:
            raise RuntimeError("ConformalSets is not fitted: call fit() or from_state() first")
        if len(p) and p.shape[1] != len(self.quantiles):
            raise ValueError(f"probabilities have {p.shape[1]} columns, the sets were fitted on {len(self.quantiles)}")

    def sets(self, probs: Any) -> np.ndarray:
        """Set membership: (N, K) bool single-label; (N, K, 2) bool [absent, present] multi-label."""
        p = _matrix(probs, 0 if self.quantiles is None else len(self.quantiles))
        self._check(p)
        q = self.quantiles
        if not self.multilabel:
            return (1.0 - p) <= q[None, :] + _EPS
        absent = p <= q[None, :, 0] + _EPS
        present = (1.0 - p) <= q[None, :, 1] + _EPS
        return np.stack([absent, present], axis=-1)

    def decided(self, probs: Any) -> np.ndarray:
        """Multi-label only: (N, K) int8, 1 present / 0 absent / -1 undecided (both or neither state in the set)."""
        if not self.multilabel:
            raise ValueError("decided() is for multi-label sets; single-label sets come from sets()")
        s = self.sets(probs)
        out = np.full(s.shape[:2], -1, dtype=np.int8)
        out[s[..., 1] & ~s[..., 0]] = 1
        out[s[..., 0] & ~s[..., 1]] = 0
        return out

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict:
        """Plain-data state for a weights_only checkpoint (inf quantiles stay floats)."""
        return {"kind": "conformal", "alpha": self.alpha, "class_conditional": self.class_conditional,
                "multilabel": self.multilabel, "min_class_count": self.min_class_count,
                "n_calib": int(self.n_calib),
                "fallback": [list(f) if isinstance(f, list) else int(f) for f in self.fallback],
                "quantiles": None if self.quantiles is None else self.quantiles.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "ConformalSets":
        """Rebuild fitted sets from `state()`."""
        obj = cls(state["alpha"], state["class_conditional"], state["multilabel"], state["min_class_count"])
        obj.n_calib = int(state["n_calib"])
        obj.fallback = list(state["fallback"])
        if state["quantiles"] is not None:
            q = np.asarray(state["quantiles"], dtype=np.float64)
            obj.quantiles = q.reshape(-1, 2) if obj.multilabel else q.reshape(-1)
        return obj


def coverage_report(sets: Any, labels: Any) -> dict:
    """How often the true answer is in the set, and how large / informative the sets are.

    Single-label ((N, K) sets, int labels): coverage, mean_set_size, per_class_coverage {class: coverage}
    over the classes present in labels, empty_share, singleton_share, n.
    Multi-label ((N, K, 2) sets, 0/1 (N, K) labels): coverage over all (row, label) pairs,
    per_label_coverage {label: coverage}, per_label_present_coverage {label: coverage of the rows where it
    is set}, joint_coverage (every label of the row covered), undecided_share (both states),
    empty_share (neither), n.
    """
    s = _array(sets).astype(bool)
    y = _array(labels)
    if s.ndim == 3:
        return _multilabel_coverage(s, y.reshape(s.shape[:2]).astype(bool))
    n = len(s)
    if n == 0:
        return {"coverage": None, "mean_set_size": None, "per_class_coverage": {}, "empty_share": None,
                "singleton_share": None, "n": 0}
    y = y.reshape(-1).astype(np.int64)
    covered = s[np.arange(n), y]
    size = s.sum(axis=1)
    return {
        "coverage": float(covered.mean()),
        "mean_set_size": float(size.mean()),
        "per_class_coverage": {int(k): float(covered[y == k].mean()) for k in np.unique(y)},
        "empty_share": float((size == 0).mean()),
        "singleton_share": float((size == 1).mean()),
        "n": int(n),
    }


def _multilabel_coverage(s: np.ndarray, y: np.ndarray) -> dict:
    n, k = y.shape
    if n == 0:
        return {"coverage": None, "per_label_coverage": {}, "per_label_present_coverage": {},
                "joint_coverage": None, "undecided_share": None, "empty_share": None, "n": 0}
    covered = np.where(y, s[..., 1], s[..., 0])  # true state in the set
    present = {j: float(covered[y[:, j], j].mean()) for j in range(k) if y[:, j].any()}
    return {
        "coverage": float(covered.mean()),
        "per_label_coverage": {j: float(covered[:, j].mean()) for j in range(k)},
        "per_label_present_coverage": present,
        "joint_coverage": float(covered.all(axis=1).mean()),
        "undecided_share": float((s[..., 0] & s[..., 1]).mean()),
        "empty_share": float((~s[..., 0] & ~s[..., 1]).mean()),
        "n": int(n),
    }
