"""Radon sinograms of encoded maps, batched in torch, flattened to 1-D feature vectors.

Matches `skimage.transform.radon(image, theta, circle=True)` (bilinear rotation about the centre
pixel, sum along columns) but works on a whole batch of multi-channel maps at once.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def radon_batch(images: torch.Tensor, angles_deg: np.ndarray | list[float]) -> torch.Tensor:
    """(N, C, S, S) -> sinograms (N, C, S, A): column sums of each map rotated by each angle."""
    n, c, h, w = images.shape
    if h != w:
        raise ValueError(f"Radon transform needs square maps, got {h}x{w}")
    s = h
    theta = torch.deg2rad(torch.as_tensor(np.asarray(angles_deg, np.float64), dtype=torch.float32))
    centre = s // 2
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    x_in = cos * (xx - centre) + sin * (yy - centre) + centre  # skimage's inverse map, per angle
    y_in = -sin * (xx - centre) + cos * (yy - centre) + centre
    grid = torch.stack([x_in / (s - 1) * 2 - 1, y_in / (s - 1) * 2 - 1], dim=-1).to(images)  # (A, S, S, 2)
    flat = images.reshape(1, n * c, s, s).expand(len(theta), -1, -1, -1)
    rotated = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return rotated.sum(dim=2).permute(1, 2, 0).reshape(n, c, s, len(theta))  # (A, NC, S) -> (N, C, S, A)


class RadonFeatures:
    """Stateless transform step: encoded maps (N, C, S, S) -> flattened sinograms (N, C * S * A).

    `angles` defaults to S angles evenly spaced over [0, 180), so the feature pool has
    C * S * S values: m * n * c / 4 for maps of m x n encoded at half resolution, as in the paper."""

    def __init__(self, angles: int | None = None, batch_size: int = 256) -> None:
        self.angles, self.batch_size = angles, batch_size

    def fit(self, codes: np.ndarray, y=None) -> "RadonFeatures":
        return self

    def theta(self, size: int) -> np.ndarray:
        a = self.angles or size
        return np.arange(a) * 180.0 / a

    @torch.inference_mode()
    def transform(self, codes: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(codes), dtype=torch.float32)
        theta = self.theta(x.shape[-1])
        out = [radon_batch(x[i:i + self.batch_size], theta).flatten(1) for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, x.shape[1] * x.shape[-1] * len(theta)), np.float32)

    def fit_transform(self, codes: np.ndarray, y=None) -> np.ndarray:
        return self.fit(codes).transform(codes)
