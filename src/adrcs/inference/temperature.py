"""Temperature scaling: calibrated probabilities from a trained network's logits (Guo et al., 2017).

Single-label: one scalar T fitted on the calibration split by minimising the softmax NLL of logits / T.
Multi-label: one T per label fitted on that label's binary cross-entropy of sigmoid(logit / T).
log T is optimised (T stays positive) with torch LBFGS in float64; the result is clipped to
[T_MIN, T_MAX] so separable data cannot drive T to 0 or infinity. Where nothing can be learnt
(no rows; single-label with one class present; a label that is always or never set) T stays 1.

Hand-written: fitting one or K scalars with torch's LBFGS is a few lines, and pytorch-ood's
TemperatureScaling fits a single softmax T only (no per-label T), optimises T itself (not log T, so it
can leave T > 0) for 50 LBFGS steps at lr 0.01, and raises on an empty calibration split.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TemperatureScaler", "T_MIN", "T_MAX"]

T_MIN, T_MAX = 0.05, 20.0


def _logits_array(logits: Any) -> np.ndarray:
    """(N, K) float64 array from a numpy array, list or CPU/GPU tensor."""
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    arr = np.asarray(logits, dtype=np.float64)
    return arr.reshape(0, 0) if arr.size == 0 and arr.ndim < 2 else arr


class TemperatureScaler:
    """Divides logits by fitted temperatures before softmax (single-label) or sigmoid (multi-label).

    `temperatures` is a float64 array: shape (1,) single-label or before fitting (identity, T = 1),
    shape (K,) multi-label after fitting. T > 1 softens over-confident networks.
    """

    def __init__(self, multilabel: bool = False, temperatures: Any = None) -> None:
        self.multilabel = bool(multilabel)
        temps = np.ones(1) if temperatures is None else np.asarray(temperatures, dtype=np.float64).reshape(-1)
        if temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
            raise ValueError(f"temperatures must be finite and > 0, got {temps.tolist()}")
        self.temperatures = temps

    @classmethod
    def identity(cls, multilabel: bool = False) -> "TemperatureScaler":
        """A scaler that leaves probabilities as the network gives them (T = 1)."""
        return cls(multilabel)

    # ------------------------------------------------------------------ fitting
    def fit(self, logits: Any, labels: Any, max_iter: int = 200) -> "TemperatureScaler":
        """Fit the temperature(s) on calibration logits (N, K) and labels; returns self.

        labels: int class per row (single-label) or a 0/1 (N, K) matrix (multi-label).
        """
        z = _logits_array(logits)
        y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
        if len(z) == 0:
            self.temperatures = np.ones(z.shape[1] if self.multilabel and z.ndim == 2 and z.shape[1] else 1)
            return self
        if self.multilabel:
            self.temperatures = self._fit_multilabel(z, y.reshape(z.shape).astype(np.float64), max_iter)
        else:
            self.temperatures = self._fit_single(z, y.reshape(-1).astype(np.int64), max_iter)
        return self

    @staticmethod
    def _fit_single(z: np.ndarray, y: np.ndarray, max_iter: int) -> np.ndarray:
        if len(np.unique(y)) < 2:  # one class only: NLL just rewards ever sharper outputs
            return np.ones(1)
        zt, yt = torch.from_numpy(z), torch.from_numpy(y)
        log_t = _lbfgs(lambda lt: F.cross_entropy(zt / lt.exp(), yt), torch.zeros(1, dtype=torch.float64), max_iter)
        return _finish(log_t, np.ones(1, dtype=bool))

    @staticmethod
    def _fit_multilabel(z: np.ndarray, y: np.ndarray, max_iter: int) -> np.ndarray:
        positives = y.sum(axis=0)
        learnable = (positives > 0) & (positives < len(y))  # always / never set: T stays 1
        if not learnable.any():
            return np.ones(z.shape[1])
        zt, yt = torch.from_numpy(z), torch.from_numpy(y)
        mask = torch.from_numpy(learnable.astype(np.float64))

        # Each label's BCE depends on its own T only, so one summed objective fits all labels at once.
        def loss(lt: torch.Tensor) -> torch.Tensor:
            per_label = F.binary_cross_entropy_with_logits(zt / lt.exp(), yt, reduction="none").mean(dim=0)
            return (per_label * mask).sum()

        log_t = _lbfgs(loss, torch.zeros(z.shape[1], dtype=torch.float64), max_iter)
        return _finish(log_t, learnable)

    # ------------------------------------------------------------------ applying
    def scaled_logits(self, logits: Any) -> np.ndarray:
        """logits / T as a float64 array of the input's shape."""
        z = _logits_array(logits)
        if z.size == 0:
            return z
        return z / self.temperatures.reshape(1, -1)

    def probabilities(self, logits: Any) -> np.ndarray:
        """Calibrated (N, K) probabilities: softmax (single-label) or sigmoid (multi-label) of logits / T."""
        z = torch.from_numpy(self.scaled_logits(logits))
        if z.numel() == 0:
            return z.numpy()
        return (torch.sigmoid(z) if self.multilabel else torch.softmax(z, dim=1)).numpy()

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict:
        """Plain-data state for a weights_only checkpoint."""
        return {"kind": "temperature", "multilabel": self.multilabel,
                "temperatures": [float(t) for t in self.temperatures]}

    @classmethod
    def from_state(cls, state: dict) -> "TemperatureScaler":
        """Rebuild a scaler from `state()`."""
        return cls(bool(state["multilabel"]), state["temperatures"])

    def __repr__(self) -> str:
        temps = np.round(self.temperatures, 4).tolist()
        return f"TemperatureScaler(multilabel={self.multilabel}, temperatures={temps})"


def _lbfgs(loss_fn, log_t: torch.Tensor, max_iter: int) -> torch.Tensor:
    """Minimise loss_fn(log_t) with LBFGS (strong-Wolfe line search); returns the optimised log T."""
    log_t = log_t.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss_fn(log_t)
        value.backward()
        return value

    opt.step(closure)
    return log_t.detach()


def _finish(log_t: torch.Tensor, learnable: np.ndarray) -> np.ndarray:
    """exp(log T) clipped to [T_MIN, T_MAX]; 1 where not learnable or not finite."""
    temps = np.exp(log_t.numpy())
    temps = np.where(np.isfinite(temps), np.clip(temps, T_MIN, T_MAX), 1.0)
    return np.where(learnable, temps, 1.0)
