"""`resnet50_1d`: ResNet-50 with 1-D convolutions (bottleneck blocks 3-4-6-3)."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base1d import SequenceClassifier, conv1d_bn_relu
from adrcs.models.registry import register


class Bottleneck1D(nn.Module):
    """1x1 reduce, k3 (stride s), 1x1 expand (x4), BatchNorm, identity or projected shortcut."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            conv1d_bn_relu(c_in, width, k=1), conv1d_bn_relu(width, width, k=3, stride=stride),
            nn.Conv1d(width, c_out, 1, bias=False), nn.BatchNorm1d(c_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet50_1D(SequenceClassifier):
    """Stem k7 conv (w) + max-pool, four stages of 3, 4, 6, 3 bottlenecks (widths w, 2w, 4w, 8w,
    outputs x4; stride 2 from stage 2 on), global average pooling, linear output. `width` 64 is
    ResNet-50's."""

    def __init__(self, num_classes: int, width: int = 64, layers: tuple[int, ...] = (3, 4, 6, 3),
                 multilabel: bool = False, in_chans: int = 1) -> None:
        super().__init__()
        self.multilabel = multilabel
        blocks: list[nn.Module] = [conv1d_bn_relu(in_chans, width, k=7), nn.MaxPool1d(3, 2, 1)]
        c = width
        for i, n in enumerate(layers):
            w = width * 2 ** i
            for j in range(n):
                blocks.append(Bottleneck1D(c, w, stride=2 if (i > 0 and j == 0) else 1))
                c = w * Bottleneck1D.expansion
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.num_features = c
        self.head = nn.Linear(c, num_classes)


@register("resnet50_1d", input="sequence")
def resnet50_1d(num_classes: int, **kwargs) -> ResNet50_1D:
    return ResNet50_1D(num_classes, **kwargs)
