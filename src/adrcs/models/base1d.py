"""Shared pieces of the 1-D classifiers (selected sinogram features -> class)."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base import WaferClassifier


def conv1d_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """1-D conv (no bias, 'same' padding) + batch norm + ReLU."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


class SequenceClassifier(WaferClassifier):
    """A classifier of 1-D feature vectors: input (N, L) or (N, C, L); same interface as the 2-D models.

    Subclasses set `self.features` (a module ending in (N, C, L') or (N, F)), `self.head` and
    `self.global_pool` (True: avg + max pool the (N, C, L') output to (N, 2C))."""

    global_pool: bool = False

    @staticmethod
    def as_sequence(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.dim() == 2 else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(self.as_sequence(x))
        return global_pool(f) if self.global_pool else f

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, L) -> (N, 2C): global average and max pooling, concatenated."""
    return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
