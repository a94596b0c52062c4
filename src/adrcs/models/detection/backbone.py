"""Shared detector parts: a ResNet-18-style trunk of any width under an FPN, norms, input statistics.

Everything trains from scratch, so the trunk uses trainable BatchNorm (or GroupNorm), never the
FrozenBatchNorm torchvision uses for pretrained backbones.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.resnet import BasicBlock
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

RESNET18_WIDTHS = (64, 128, 256, 512)
NORMS = ("bn", "gn")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 4 channels (any channel count works)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 4, 1)), channels)


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """"bn" -> BatchNorm2d, "gn" -> `group_norm` (better for batches of 1-2 images)."""
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return group_norm
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class ResNetTrunk(nn.Module):
    """ResNet-18 layout (BasicBlocks, strides 4/8/16/32 after layer1..layer4) with free widths.

    Children are named like torchvision's ResNet (conv1, bn1, relu, maxpool, layer1..layer4) so
    `BackboneWithFPN` can pick the layers; `widths=RESNET18_WIDTHS` is resnet18 exactly, apart
    from `in_chans`.
    """

    def __init__(self, in_chans: int = 1, widths: Sequence[int] = RESNET18_WIDTHS,
                 blocks: Sequence[int] = (2, 2, 2, 2), norm: str = "bn") -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"widths and blocks need 4 entries, got {widths} and {blocks}")
        nl = norm_layer(norm)
        self.widths = [int(w) for w in widths]
        self.conv1 = nn.Conv2d(in_chans, self.widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nl(self.widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = self.widths[0]
        for k, (w, n) in enumerate(zip(self.widths, blocks), start=1):
            stride = 1 if k == 1 else 2
            layers = []
            for j in range(int(n)):
                down = None
                if j == 0 and (stride != 1 or cin != w):
                    down = nn.Sequential(nn.Conv2d(cin, w, 1, stride=stride, bias=False), nl(w))
                layers.append(BasicBlock(cin, w, stride if j == 0 else 1, down, norm_layer=nl))
                cin = w
            setattr(self, f"layer{k}", nn.Sequential(*layers))
        for m in self.modules():  # torchvision's ResNet init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class NoExtraLevel(ExtraFPNBlock):
    """An FPN extra block that adds no level (the pyramid stops at the last trunk layer)."""

    def forward(self, results, x, names):  # noqa: D102
        return results, names


def scaled_widths(width_mult: float, base: Sequence[int] = RESNET18_WIDTHS) -> list[int]:
    """`base` widths times `width_mult`, rounded to multiples of 8 (at least 8)."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    return [max(8, int(round(w * width_mult / 8)) * 8) for w in base]


def fpn_backbone(in_chans: int = 1, width_mult: float = 1.0, fpn_channels: int = 128,
                 returned_layers: Sequence[int] = (2, 3, 4), extra: str = "maxpool",
                 norm: str = "bn") -> BackboneWithFPN:
    """A `ResNetTrunk` under a feature pyramid of `fpn_channels` channels.

    returned_layers: trunk layers feeding the FPN (1..4: strides 4, 8, 16, 32).
    extra: levels above the last: "maxpool" (one, stride x2, free), "p6p7" (two strided convs,
        RetinaNet/FCOS paper) or "none".
    """
    trunk = ResNetTrunk(in_chans, scaled_widths(width_mult), norm=norm)
    layers = sorted(int(k) for k in returned_layers)
    if not layers or layers[0] < 1 or layers[-1] > 4:
        raise ValueError(f"returned_layers must be in 1..4, got {returned_layers}")
    in_list = [trunk.widths[k - 1] for k in layers]
    if extra == "maxpool":
        block: ExtraFPNBlock = LastLevelMaxPool()
    elif extra == "p6p7":
        block = LastLevelP6P7(fpn_channels, fpn_channels)
    elif extra == "none":
        block = NoExtraLevel()
    else:
        raise ValueError(f"extra must be 'maxpool', 'p6p7' or 'none', got {extra!r}")
    return_layers = OrderedDict((f"layer{k}", str(i)) for i, k in enumerate(layers))
    return BackboneWithFPN(trunk, return_layers, in_list, fpn_channels, extra_blocks=block)


def num_levels(returned_layers: Sequence[int], extra: str) -> int:
    """Number of pyramid levels `fpn_backbone` returns."""
    return len(returned_layers) + {"maxpool": 1, "p6p7": 2, "none": 0}[extra]


def level_strides(returned_layers: Sequence[int], extra: str) -> list[int]:
    """Stride of each pyramid level (layer k has stride 2 ** (k + 1); extra levels double it)."""
    strides = [2 ** (int(k) + 1) for k in sorted(returned_layers)]
    for _ in range(num_levels(returned_layers, extra) - len(strides)):
        strides.append(strides[-1] * 2)
    return strides


def input_stats(in_chans: int, image_mean: float | Sequence[float] | None,
                image_std: float | Sequence[float] | None) -> tuple[list[float], list[float]]:
    """Per-channel normalisation lists of length `in_chans` (defaults 0.5 and 0.25 for [0, 1] inputs)."""
    def expand(v, default: float) -> list[float]:
        if v is None:
            v = default
        if isinstance(v, (int, float)):
            return [float(v)] * in_chans
        v = [float(x) for x in v]
        if len(v) != in_chans:
            raise ValueError(f"need {in_chans} per-channel values, got {len(v)}")
        return v

    return expand(image_mean, 0.5), expand(image_std, 0.25)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
