"""One-hot encoding of die codes into 3 channels: off-wafer, good die, failing die."""
from __future__ import annotations

import torch


def one_hot_maps(maps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, H, W) integer die codes 0/1/2 -> (N, 3, H, W) float one-hot."""
    codes = maps.long()
    out = torch.zeros(codes.shape[0], 3, *codes.shape[1:], dtype=dtype, device=maps.device)
    return out.scatter_(1, codes.unsqueeze(1), 1.0)
