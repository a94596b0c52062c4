"""Train-time augmentation for inspection images: flips, small shifts, brightness/contrast.

Works per batch on uint8 tensors (N, C, H, W) and returns float tensors in [0, 1]; every sample
gets its own random flip, shift and intensity change. Template channels (when stacked with the
test image) move with it, since the same op applies to all channels of a sample.
"""
from __future__ import annotations

import torch


def augment_images(x: torch.Tensor, max_shift: float = 0.05, brightness: float = 0.1, contrast: float = 0.2,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> augmented float (N, C, H, W) in [0, 1]."""
    n, _, h, w = x.shape
    out = x.float() / 255.0
    r = torch.rand(n, 6, generator=generator).to(x.device)
    hflip, vflip = r[:, 0] < 0.5, r[:, 1] < 0.5
    out[hflip] = out[hflip].flip(-1)
    out[vflip] = out[vflip].flip(-2)
    if max_shift > 0:  # shift by up to max_shift of the side, zero fill (one integer shift per sample)
        dx = ((r[:, 2] * 2 - 1) * max_shift * w).round().long()
        dy = ((r[:, 3] * 2 - 1) * max_shift * h).round().long()
        shifted = torch.zeros_like(out)
        for i in range(n):
            sx, sy = int(dx[i]), int(dy[i])
            src = out[i, :, max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)]
            shifted[i, :, max(0, sy):max(0, sy) + src.shape[1], max(0, sx):max(0, sx) + src.shape[2]] = src
        out = shifted
    gain = 1 + (r[:, 4] * 2 - 1) * contrast
    bias = (r[:, 5] * 2 - 1) * brightness
    return (out * gain[:, None, None, None] + bias[:, None, None, None]).clamp(0, 1)
