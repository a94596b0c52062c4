"""The 8 symmetries of the square (rot90 x flip): train-time augmentation and TTA views.

Wafer patterns are defined up to rotation and reflection (a Scratch is a Scratch at any angle),
so these are label-preserving for every WM-811K and MixedWM38 class.
"""
from __future__ import annotations

import torch


def _apply(x: torch.Tensor, k: int) -> torch.Tensor:
    # k in 0..7: rotate by (k % 4) * 90 degrees, then mirror if k >= 4
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def random_dihedral(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent random symmetry to each sample of a batch (..., H, W) with H == W."""
    ks = torch.randint(0, 8, (x.shape[0],), generator=generator, device="cpu")
    out = torch.empty_like(x)
    for k in range(8):  # 8 vectorised group ops, not one op per sample
        idx = (ks == k).nonzero().flatten().to(x.device)
        if len(idx):
            out[idx] = _apply(x[idx], k)
    return out


def dihedral_views(x: torch.Tensor, n: int = 8) -> list[torch.Tensor]:
    """The first `n` symmetric views of a batch (identity first), for test-time augmentation."""
    return [_apply(x, k) for k in range(n)]
