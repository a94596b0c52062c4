"""Precise BatchNorm: re-estimate running statistics on training data after training.

With small batches (inspection-image sets of a few hundred images) the running averages that
BatchNorm keeps during training can be far from the population statistics, so eval-mode outputs
drift from what the network learned. One pass over the training data with a cumulative average
(momentum=None) fixes that without changing any weight.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn


@torch.no_grad()
def recompute_bn_stats(net: nn.Module, batches: Iterable[torch.Tensor],
                       prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> int:
    """Reset every BatchNorm's running stats and average them over `batches`; returns the batches used."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    was_training = net.training
    net.train()
    n = 0
    for x in batches:
        net(prepare(x))
        n += 1
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    net.train(was_training)
    return n
