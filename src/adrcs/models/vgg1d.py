"""`vgg16_1d`: VGG-16 with 1-D convolutions (13 conv layers in 5 stages, 3 FC layers)."""
from __future__ import annotations

import torch.nn as nn

from adrcs.models.base1d import SequenceClassifier, conv1d_bn_relu
from adrcs.models.registry import register

STAGES = [(1, 2), (2, 2), (4, 3), (8, 3), (8, 3)]  # (width multiple, convs) per stage


class VGG16_1D(SequenceClassifier):
    """Stages of k=3 conv-BN-ReLU with w, 2w, 4w, 8w, 8w filters (2, 2, 3, 3, 3 convs), max-pool 2
    (ceil mode) after each, global average pooling, FC `hidden` x 2 with dropout, linear output.
    `width` 64 is VGG-16's; smaller widths give a lighter net of the same shape."""

    def __init__(self, num_classes: int, width: int = 64, hidden: int = 512, dropout: float = 0.5,
                 multilabel: bool = False, in_chans: int = 1) -> None:
        super().__init__()
        self.multilabel = multilabel
        layers: list[nn.Module] = []
        c = in_chans
        for mult, n in STAGES:
            for _ in range(n):
                layers.append(conv1d_bn_relu(c, mult * width))
                c = mult * width
            layers.append(nn.MaxPool1d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.num_features = c
        self.head = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))


@register("vgg16_1d", input="sequence")
def vgg16_1d(num_classes: int, **kwargs) -> VGG16_1D:
    return VGG16_1D(num_classes, **kwargs)
