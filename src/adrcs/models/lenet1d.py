"""`lenet5_1d`: LeNet-5 with 1-D convolutions."""
from __future__ import annotations

import torch.nn as nn

from adrcs.models.base1d import SequenceClassifier
from adrcs.models.registry import register


class LeNet5_1D(SequenceClassifier):
    """conv k5 (6) + tanh + avg-pool 2, conv k5 (16) + tanh + avg-pool 2, adaptive pool to 16
    positions (any input length), FC 120 + tanh, FC 84 + tanh, linear output."""

    def __init__(self, num_classes: int, multilabel: bool = False, in_chans: int = 1) -> None:
        super().__init__()
        self.multilabel = multilabel
        self.features = nn.Sequential(
            nn.Conv1d(in_chans, 6, 5, padding=2), nn.Tanh(), nn.AvgPool1d(2, ceil_mode=True),
            nn.Conv1d(6, 16, 5, padding=2), nn.Tanh(), nn.AvgPool1d(2, ceil_mode=True),
            nn.AdaptiveAvgPool1d(16), nn.Flatten(),
            nn.Linear(16 * 16, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
        )
        self.num_features = 84
        self.head = nn.Linear(84, num_classes)


@register("lenet5_1d", input="sequence")
def lenet5_1d(num_classes: int, **kwargs) -> LeNet5_1D:
    return LeNet5_1D(num_classes, **kwargs)
