"""`cnn`: a plain VGG-style 2-D CNN baseline for wafer maps."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base import WaferClassifier, conv_bn_relu
from adrcs.models.registry import register


class PlainCNN(WaferClassifier):
    """Four stages of two 3x3 conv-BN-ReLU layers (8 convs), 2x2 max-pool after stages 1-3,
    global average pooling, dropout and a linear head. Widths: w, 2w, 4w, 8w."""

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3, multilabel: bool = False,
                 in_chans: int = 3) -> None:
        super().__init__()
        self.multilabel = multilabel
        w = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        c = in_chans
        for i, cw in enumerate(w):
            layers += [conv_bn_relu(c, cw), conv_bn_relu(cw, cw)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            c = cw
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))
        self.num_features = c

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@register("cnn")
def cnn(num_classes: int, **kwargs) -> PlainCNN:
    return PlainCNN(num_classes, **kwargs)
