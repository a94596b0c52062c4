"""Unknown-pattern (out-of-distribution) scores on network features or logits; higher = more unusual.

Methods (fit on the TRAINING split, threshold on in-distribution maps of the calibration split):
- "mahalanobis" (Lee et al. 2018): one mean per class and a shared (tied) covariance of the residuals to
  the class means, shrunk with Ledoit-Wolf (stable when features outnumber maps); score = min over
  classes of the Mahalanobis distance. Multi-label: every distinct label combination with at least
  `min_group_size` training maps is a "class"; maps of rarer combinations are left out of the fit (their
  patterns are too rare to have a centre). With labels=None, or when no group is large enough, a single
  Gaussian over all maps is used.
- "knn" (Sun et al. 2022): distance of the L2-normalised feature to its k-th nearest normalised training
  feature (k = 10); at most `max_train` training features (random subsample, seeded) kept as float16.
- "energy" (Liu et al. 2020): from logits, not features: -logsumexp(logits) single-label, and for
  multi-label the joint energy -sum softplus(logits) (Wang et al. 2021). Needs no fit.
`score(features=..., logits=...)` takes what the method needs (features for mahalanobis / knn, logits for
energy). `set_threshold(calib_scores, false_alarm)` takes the ceil((n+1)(1-false_alarm))-th smallest
in-distribution score (the 95th percentile with the finite-sample correction), so a held-out known map is
flagged with probability <= false_alarm; `is_unknown(scores)` is scores > threshold. Until then the
threshold is inf and nothing is flagged. Fitted on no maps, mahalanobis / knn score every map inf.

Hand-written with sklearn (LedoitWolf) and torch, pytorch-ood 0.4 evaluated (Apache-2.0): its Mahalanobis
works on precomputed features but inverts the unshrunk scatter matrix (+1e-6 ridge), which is singular or
ill-conditioned when features outnumber the maps of small classes, and asserts that every class
0..C-1 occurs (multi-label combinations would need remapping); its KNN keeps a fitted sklearn
NearestNeighbors (not plain data for weights_only checkpoints) and raises when n < k; its Energy is one
torch.logsumexp line. None of it would be left after storing plain means / precision / features.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["UnknownScorer", "ood_report", "METHODS"]

METHODS = ("mahalanobis", "knn", "energy")
_CHUNK = 4096  # rows scored at once: bounds the (chunk, classes or train) distance matrix


def _array(x: Any, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _rows(x: Any) -> np.ndarray:
    a = _array(x)
    return a.reshape(len(a), -1) if a.ndim != 2 else a


def _normalise(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


class UnknownScorer:
    """Out-of-distribution score for "unknown pattern" flags; see the module docs for the methods."""

    def __init__(self, method: str = "mahalanobis", k: int = 10, max_train: int = 20_000,
                 min_group_size: int = 5, multilabel: bool = False, seed: int = 0) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.k = int(k)
        self.max_train = int(max_train)
        self.min_group_size = int(min_group_size)
        self.multilabel = bool(multilabel)
        self.seed = int(seed)
        self.threshold = math.inf
        self.fitted = method == "energy"
        self.means: torch.Tensor | None = None      # (C, F) float32, mahalanobis
        self.precision: torch.Tensor | None = None  # (F, F) float32, mahalanobis
        self.train: torch.Tensor | None = None      # (M, F) float16 normalised, knn
        self.groups: list = []                      # class index / label combination of each mean

    # ------------------------------------------------------------------ fitting
    def fit(self, features: Any = None, labels: Any = None) -> "UnknownScorer":
        """Fit on training-split features (N, F) and labels (int per row, 0/1 (N, K), or None); returns self.

        energy needs no fit (call it or not); knn ignores labels.
        """
        if self.method == "energy":
            return self
        if features is None:
            raise ValueError(f"method {self.method!r} is fitted on features")
        z = _rows(features)
        self.fitted = True
        if self.method == "knn":
            self._fit_knn(z)
        else:
            self._fit_mahalanobis(z, None if labels is None else _array(labels, None))
        return self

    def _fit_knn(self, z: np.ndarray) -> None:
        if len(z) > self.max_train:
            z = z[np.sort(np.random.default_rng(self.seed).choice(len(z), self.max_train, replace=False))]
        self.train = _normalise(torch.from_numpy(z).float()).half()

    def _groups(self, n: int, labels: np.ndarray | None) -> tuple[np.ndarray, list]:
        """Group id per row (-1 = left out) and the group keys (class index or label tuple)."""
        if labels is None:
            return np.zeros(n, dtype=np.int64), ["all"]
        rows = labels.reshape(n, -1).astype(np.int64) if self.multilabel else labels.reshape(n, 1).astype(np.int64)
        keys, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        big = np.flatnonzero(counts >= self.min_group_size)
        if len(big) == 0:
            return np.zeros(n, dtype=np.int64), ["all"]
        remap = np.full(len(keys), -1, dtype=np.int64)
        remap[big] = np.arange(len(big))
        names = [tuple(int(v) for v in keys[i]) if self.multilabel else int(keys[i, 0]) for i in big]
        return remap[inverse.reshape(-1)], names

    def _fit_mahalanobis(self, z: np.ndarray, labels: np.ndarray | None) -> None:
        if len(z) == 0:
            self.means, self.precision, self.groups = None, None, []
            return
        group, self.groups = self._groups(len(z), labels)
        keep = group >= 0
        z, group = z[keep], group[keep]
        means = np.stack([z[group == g].mean(axis=0) for g in range(len(self.groups))])
        residuals = z - means[group]
        if len(z) < 2:  # one map: no spread to estimate, plain Euclidean distance
            precision = np.eye(z.shape[1])
        else:
            precision = LedoitWolf(assume_centered=True).fit(residuals).precision_
        self.means = torch.from_numpy(means).float()
        self.precision = torch.from_numpy(precision).float()

    # ------------------------------------------------------------------ scoring
    def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
        """(N,) float64 unknown scores, higher = more unusual: features for mahalanobis / knn, logits for energy."""
        if self.method == "energy":
            if logits is None:
                raise ValueError("method 'energy' scores logits: score(logits=...)")
            return self._energy(_rows(logits))
        if features is None:
            raise ValueError(f"method {self.method!r} scores features: score(features=...)")
        if not self.fitted:
            raise RuntimeError("UnknownScorer is not fitted: call fit() or from_state() first")
        z = _rows(features)
        if len(z) == 0:
            return np.zeros(0)
        known = self.train if self.method == "knn" else self.means
        if known is None or len(known) == 0:  # fitted on no maps: nothing is known
            return np.full(len(z), math.inf)
        score_chunk = self._knn if self.method == "knn" else self._mahalanobis
        zt = torch.from_numpy(z).float()
        return np.concatenate([score_chunk(zt[i:i + _CHUNK]) for i in range(0, len(zt), _CHUNK)])

    def _prepared(self) -> dict[str, torch.Tensor]:
        """The fitted tensors in the precision scoring uses, converted once per fit / load (not per call)."""
        key = (id(self.means), id(self.precision), id(self.train))
        if getattr(self, "_prep_key", None) != key:
            prep: dict[str, torch.Tensor] = {}
            if self.means is not None and self.precision is not None:
                mu, prec = self.means.double(), self.precision.double()
                prep.update(mu=mu, prec=prec, mu_term=((mu @ prec) * mu).sum(1)[None, :])
            if self.train is not None:
                prep["train"] = self.train.float()
            self._prep, self._prep_key = prep, key
        return self._prep

    def _mahalanobis(self, z: torch.Tensor) -> np.ndarray:
        p = self._prepared()
        z = z.double()
        zp = z @ p["prec"]
        # (z - mu)^T P (z - mu) = z P z - 2 z P mu + mu P mu, for all classes at once
        d2 = (zp * z).sum(1, keepdim=True) - 2 * zp @ p["mu"].T + p["mu_term"]
        return d2.min(dim=1).values.clamp_min(0).sqrt().numpy()

    def _knn(self, z: torch.Tensor) -> np.ndarray:
        train = self._prepared()["train"]
        k = min(self.k, len(train))
        cos = _normalise(z) @ train.T
        kth = cos.topk(k, dim=1).values[:, -1]  # k-th largest cosine = k-th nearest
        return (2.0 - 2.0 * kth.double()).clamp_min(0).sqrt().numpy()

    def _energy(self, logits: np.ndarray) -> np.ndarray:
        if len(logits) == 0:
            return np.zeros(0)
        z = torch.from_numpy(logits)
        if self.multilabel:
            return (-torch.nn.functional.softplus(z).sum(dim=1)).numpy()
        return (-torch.logsumexp(z, dim=1)).numpy()

    # ------------------------------------------------------------------ threshold
    def set_threshold(self, calib_scores: Any, false_alarm: float = 0.05) -> float:
        """Threshold from in-distribution calibration scores so that <= false_alarm of known maps are flagged."""
        s = np.sort(_array(calib_scores).reshape(-1))
        s = s[np.isfinite(s)]
        if len(s) == 0:
            self.threshold = math.inf
            return self.threshold
        rank = min(len(s), math.ceil((len(s) + 1) * (1.0 - false_alarm) - 1e-9))
        self.threshold = float(s[max(rank, 1) - 1])
        return self.threshold

    def is_unknown(self, scores: Any) -> np.ndarray:
        """(N,) bool: score above the threshold."""
        return _array(scores).reshape(-1) > self.threshold

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict:
        """Plain-data state (floats, lists, tensors) for a weights_only checkpoint."""
        return {"kind": "unknown", "method": self.method, "k": self.k, "max_train": self.max_train,
                "min_group_size": self.min_group_size, "multilabel": self.multilabel, "seed": self.seed,
                "threshold": float(self.threshold), "fitted": self.fitted,
                "groups": [list(g) if isinstance(g, tuple) else g for g in self.groups],
                "means": self.means, "precision": self.precision, "train": self.train}

    @classmethod
    def from_state(cls, state: dict) -> "UnknownScorer":
        """Rebuild a fitted scorer from `state()`."""
        obj = cls(state["method"], state["k"], state["max_train"], state["min_group_size"],
                  state["multilabel"], state["seed"])
        obj.threshold = float(state["threshold"])
        obj.fitted = bool(state["fitted"])
        obj.groups = [tuple(g) if isinstance(g, list) else g for g in state["groups"]]
        obj.means, obj.precision, obj.train = state["means"], state["precision"], state["train"]
        return obj


def ood_report(scores_in: Any, scores_out: Any) -> dict:
    """AUROC and FPR at 95 % TPR of unknown scores (unknown = positive; higher score = more unknown).

    fpr_at_95_tpr: share of known maps flagged when the threshold catches 95 % of the unknown ones.
    Both are None when either side is empty.
    """
    s_in, s_out = _array(scores_in).reshape(-1), _array(scores_out).reshape(-1)
    report = {"n_in": int(len(s_in)), "n_out": int(len(s_out)), "auroc": None, "fpr_at_95_tpr": None}
    if len(s_in) == 0 or len(s_out) == 0:
        return report
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.nan_to_num(np.r_[s_in, s_out], posinf=np.finfo(np.float64).max)
    fpr, tpr, _ = roc_curve(y, s)
    report["auroc"] = float(roc_auc_score(y, s))
    report["fpr_at_95_tpr"] = float(fpr[np.searchsorted(tpr, 0.95, side="left")])
    return report
