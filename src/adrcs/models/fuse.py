"""Inference-time optimisation: fold BatchNorm into the preceding convolution."""
from __future__ import annotations

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv2d/Conv1d directly followed by a BatchNorm (inside a Sequential) into one conv.

    Exact in eval mode; the model must not be trained afterwards. Returns the model (changed in place).
    """
    model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model
