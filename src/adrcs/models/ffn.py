"""`ffn`: the multi-scale Feature Fusion Network of the ADRCS paper, for wafer maps."""
from __future__ import annotations

import torch
import torch.nn as nn

from adrcs.models.base import WaferClassifier, conv_bn_relu
from adrcs.models.registry import register


class _Branch(nn.Module):
    """One scale: a pooling that sets the scale, conv blocks, then global avg + max pooling."""

    def __init__(self, pool: nn.Module, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.pool = pool
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(self.pool(x))
        return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)


class FeatureFusionNet(WaferClassifier):
    """Three parallel CNN branches that see the map at different scales, fused by concatenation.

    Layers, for an S x S one-hot input (3 channels, S divisible by 8), w = `width` and
    k = `deep_mult` * w (every conv is 3x3, stride 1, padding 1, no bias, then BatchNorm + ReLU):

    - stem: PixelUnshuffle(2) (lossless space-to-depth: 12 x S/2 x S/2), conv 12->w.
    - branch 1, fine (no pooling, S/2): conv w->w, MaxPool 2, conv w->2w (S/4), MaxPool 2,
      conv 2w->k, then `extra_convs` x conv k->k (S/8).
    - branch 2, medium (MaxPool 2, S/4): conv w->2w, MaxPool 2, conv 2w->k (S/8).
    - branch 3, coarse (AvgPool 4, S/8): conv w->2w, conv 2w->k.
    - each branch ends with global average pooling and global max pooling, concatenated
      (2k features per branch).
    - fusion head: concat (6k) -> Linear 6k->`hidden` -> ReLU -> Dropout(`dropout`) ->
      Linear `hidden`->classes (logits).

    Max pooling keeps isolated failing dies visible at coarse scales (a Scratch survives),
    average pooling measures failure density (Near-full, Random), and the coarse branch sees
    the whole-wafer layout (Edge-Ring, Center). Softmax or sigmoid on the logits gives single-
    or multi-label predictions. With w=24, deep_mult=2, extra_convs=0: 178 K parameters.
    """

    def __init__(self, num_classes: int, width: int = 24, deep_mult: int = 2, extra_convs: int = 0, hidden: int = 256,
                 dropout: float = 0.3, multilabel: bool = False, in_chans: int = 3) -> None:
        super().__init__()
        self.multilabel = multilabel
        w, k = width, deep_mult * width
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), conv_bn_relu(4 * in_chans, w))
        self.branches = nn.ModuleList([
            _Branch(nn.Identity(), [conv_bn_relu(w, w), nn.MaxPool2d(2), conv_bn_relu(w, 2 * w),
                                    nn.MaxPool2d(2), conv_bn_relu(2 * w, k),
                                    *[conv_bn_relu(k, k) for _ in range(extra_convs)]]),
            _Branch(nn.MaxPool2d(2), [conv_bn_relu(w, 2 * w), nn.MaxPool2d(2), conv_bn_relu(2 * w, k)]),
            _Branch(nn.AvgPool2d(4), [conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, k)]),
        ])
        self.num_features = 3 * 2 * k
        self.head = nn.Sequential(
            nn.Linear(self.num_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        return torch.cat([b(s) for b in self.branches], dim=1)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@register("ffn")
def ffn(num_classes: int, **kwargs) -> FeatureFusionNet:
    return FeatureFusionNet(num_classes, **kwargs)
