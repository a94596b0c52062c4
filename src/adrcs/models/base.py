"""Shared pieces of the 2-D wafer-map classifiers: conv block and the classifier interface."""
from __future__ import annotations

import torch
import torch.nn as nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) + batch norm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class WaferClassifier(nn.Module):
    """Interface of every classifier: logits from `forward`, probabilities from `predict_proba`.

    Single-label models use softmax over classes, multi-label models a sigmoid per label; the
    loss is chosen to match by the training engine from `self.multilabel`.
    """

    multilabel: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, F)
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:  # (N, F) -> (N, C) logits
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax) or per-label probabilities (sigmoid)."""
        logits = self(x)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
