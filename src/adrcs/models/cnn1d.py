"""`cnn1d`: the proposed 1DCNN of the sinogram paper (conv + pooling groups, FC, output)."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base1d import SequenceClassifier, conv1d_bn_relu
from adrcs.models.registry import register


class PositionPool(nn.Module):
    """Average pooling of (N, C, L) to (N, C, P): the bins of `nn.AdaptiveAvgPool1d(P)`, computed as a
    product with a (L, P) averaging matrix, so it exports to ONNX for any L (the exporter refuses
    adaptive pooling when P does not divide L)."""

    def __init__(self, positions: int) -> None:
        super().__init__()
        self.positions = int(positions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length, p = x.shape[-1], self.positions
        i = torch.arange(p, device=x.device)
        start = torch.div(i * length, p, rounding_mode="floor")
        end = torch.div((i + 1) * length + p - 1, p, rounding_mode="floor")
        pos = torch.arange(length, device=x.device)
        w = ((pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])).to(x.dtype)
        return x @ (w / w.sum(dim=1, keepdim=True)).t()


class CNN1D(SequenceClassifier):
    """Three groups of two k=3 conv-BN-ReLU layers (w, 2w, 4w filters), each followed by max-pool 2
    (ceil mode, so short inputs survive), then FC `hidden` + ReLU + dropout, linear output.

    `positions` 0: global avg + max pooling before the FC (about 180 K parameters with w=32,
    hidden=320, 9 classes, for any length). `positions` P > 0: adaptive average pooling to P
    positions, flattened into the FC (the paper's conv-pool-FC): the FC then knows *where* along
    the feature vector a response is, which matters because each position is one fixed sinogram
    feature."""

    def __init__(self, num_classes: int, width: int = 32, hidden: int = 320, dropout: float = 0.3,
                 multilabel: bool = False, in_chans: int = 1, positions: int = 0) -> None:
        super().__init__()
        self.multilabel = multilabel
        self.global_pool = positions <= 0
        layers: list[nn.Module] = []
        c = in_chans
        for w in (width, 2 * width, 4 * width):
            layers += [conv1d_bn_relu(c, w), conv1d_bn_relu(w, w), nn.MaxPool1d(2, ceil_mode=True)]
            c = w
        if positions > 0:
            layers += [PositionPool(int(positions)), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.num_features = 2 * c if positions <= 0 else c * int(positions)
        self.head = nn.Sequential(nn.Linear(self.num_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))


@register("cnn1d", input="sequence")
def cnn1d(num_classes: int, **kwargs) -> CNN1D:
    return CNN1D(num_classes, **kwargs)
