"""`inception1d`: an Inception-style 1-D CNN (parallel k1 / k3 / k5 / pool branches)."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base1d import SequenceClassifier, conv1d_bn_relu
from adrcs.models.registry import register


class InceptionBlock1D(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> k3; 1x1 -> k5; max-pool k3 -> 1x1 (each `b` filters)."""

    def __init__(self, c_in: int, b: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([
            conv1d_bn_relu(c_in, b, k=1),
            nn.Sequential(conv1d_bn_relu(c_in, b, k=1), conv1d_bn_relu(b, b, k=3)),
            nn.Sequential(conv1d_bn_relu(c_in, b, k=1), conv1d_bn_relu(b, b, k=5)),
            nn.Sequential(nn.MaxPool1d(3, 1, 1), conv1d_bn_relu(c_in, b, k=1)),
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([br(x) for br in self.branches], dim=1)


class Inception1D(SequenceClassifier):
    """Stem k7 conv (w), then `blocks` inception blocks (branch width w, 2w, 2w, ...) with a
    max-pool 2 between them, global avg + max pooling, dropout, linear output."""

    def __init__(self, num_classes: int, width: int = 32, blocks: int = 3, dropout: float = 0.3,
                 multilabel: bool = False, in_chans: int = 1) -> None:
        super().__init__()
        self.multilabel = multilabel
        self.global_pool = True
        layers: list[nn.Module] = [conv1d_bn_relu(in_chans, width, k=7)]
        c = width
        for i in range(blocks):
            b = width if i == 0 else 2 * width
            layers.append(InceptionBlock1D(c, b))
            c = 4 * b
            if i < blocks - 1:
                layers.append(nn.MaxPool1d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.num_features = 2 * c
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c, num_classes))


@register("inception1d", input="sequence")
def inception1d(num_classes: int, **kwargs) -> Inception1D:
    return Inception1D(num_classes, **kwargs)
