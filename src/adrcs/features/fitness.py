"""Fitness of a feature subset for the metaheuristic selectors (the paper's eq. 8):

    f(mask) = w * acc_KNN(selected features) + (1 - w) * (1 - n_selected / n_total)

KNN accuracy is measured on an inner, stratified split of the training data only. Distances are
computed for a whole population of masks with matrix products (torch), so one call scores many
candidate subsets; an empty mask scores 0.
"""
from __future__ import annotations

import numpy as np
import torch


class SubsetFitness:
    """Callable scoring boolean feature masks (P, F) -> fitness (P,); also `accuracy(masks)`."""

    def __init__(self, X: np.ndarray, y: np.ndarray, w: float = 0.99, k: int = 5, holdout: float = 0.3,
                 seed: int = 0) -> None:
        from sklearn.model_selection import train_test_split

        X = np.asarray(X, np.float32)
        y = np.asarray(y)
        counts = np.bincount(y)
        strat = y if counts[counts > 0].min() >= 2 else None
        tr, te = train_test_split(np.arange(len(y)), test_size=holdout, random_state=seed, stratify=strat)
        self.x_tr, self.x_te = torch.from_numpy(X[tr]), torch.from_numpy(X[te])
        self.y_tr, self.y_te = torch.from_numpy(y[tr]).long(), torch.from_numpy(y[te]).long()
        self.w, self.k, self.n_features = float(w), int(k), X.shape[1]
        self.n_classes = int(y.max()) + 1
        self.sq_tr, self.sq_te = self.x_tr ** 2, self.x_te ** 2  # cached for the distance expansion

    @torch.inference_mode()
    def accuracy(self, masks: np.ndarray) -> np.ndarray:
        """Inner-split KNN accuracy of each mask (P, F) (majority vote of the k nearest, squared L2)."""
        masks = np.atleast_2d(np.asarray(masks, bool))
        out = np.zeros(len(masks))
        k = min(self.k, len(self.y_tr))
        for i, m in enumerate(masks):
            if not m.any():
                continue
            cols = torch.from_numpy(np.flatnonzero(m))  # work only on the selected columns
            a, b = self.x_te[:, cols], self.x_tr[:, cols]
            d = self.sq_te[:, cols].sum(1)[:, None] + self.sq_tr[:, cols].sum(1)[None, :] - 2 * a @ b.T
            nn_idx = d.topk(k, dim=1, largest=False).indices
            votes = torch.zeros(len(self.y_te), self.n_classes).scatter_add_(
                1, self.y_tr[nn_idx], torch.ones(nn_idx.shape))
            out[i] = float((votes.argmax(1) == self.y_te).float().mean())
        return out

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(np.asarray(masks, bool))
        ratio = masks.sum(axis=1) / self.n_features
        fit = self.w * self.accuracy(masks) + (1 - self.w) * (1 - ratio)
        return np.where(masks.any(axis=1), fit, 0.0)
