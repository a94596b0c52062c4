"""Quality measures for generated wafer maps: Frechet distance, KID and a memorisation check.

FD and KID are computed in a feature space given by the caller (here: the penultimate layer
of a classifier trained on real wafer maps, since no pretrained Inception weights exist here).
"""
from __future__ import annotations

import numpy as np
import torch

from adrcs.transforms.dihedral import dihedral_views
from adrcs.transforms.one_hot import one_hot_maps


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to two feature sets (N, F).

    Tr (S_a S_b)^(1/2) is computed as Tr (S_a^(1/2) S_b S_a^(1/2))^(1/2) with symmetric
    eigendecompositions, which stays exact for the singular covariances of small classes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    s_a, s_b = np.atleast_2d(s_a), np.atleast_2d(s_b)
    root_a = _sqrt_psd(s_a)
    middle = root_a @ s_b @ root_a
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)
    return max(fd, 0.0)


def kernel_distance(a: np.ndarray, b: np.ndarray, subset_size: int = 100, subsets: int = 50, seed: int = 0) -> float:
    """KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / F + 1)^3, averaged over random subsets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals))


def nearest_copy_distance(generated: np.ndarray, train: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each generated map, the smallest share of grid cells that differ from any training map
    under any of the 8 rotations/flips. Maps are uint8 die codes of one size (N, S, S)."""
    if len(generated) == 0:
        return np.zeros(0)
    if len(train) == 0:
        return np.ones(len(generated))
    t = torch.from_numpy(np.ascontiguousarray(train))
    ref = torch.cat([one_hot_maps(v).flatten(1) for v in dihedral_views(t)])  # (8M, 3*S*S)
    cells = generated.shape[1] * generated.shape[2]
    out = []
    for i in range(0, len(generated), chunk):
        g = one_hot_maps(torch.from_numpy(np.ascontiguousarray(generated[i:i + chunk]))).flatten(1)
        same = g @ ref.T  # cells where the die codes agree
        out.append(1.0 - same.max(dim=1).values / cells)
    return torch.cat(out).numpy().astype(np.float64)


def memorised_share(generated: np.ndarray, train: np.ndarray, threshold: float = 0.01) -> tuple[float, float]:
    """(share of generated maps within `threshold` differing cells of a training map, mean NN distance)."""
    d = nearest_copy_distance(generated, train)
    if len(d) == 0:
        return float("nan"), float("nan")
    return float((d <= threshold).mean()), float(d.mean())
