"""Reference-aware input: the test image stacked with its defect-free template and their difference."""
from __future__ import annotations

import numpy as np
import torch


def as_unit_tensor(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W) or (C, H, W) image -> float32 (C, H, W) in [0, 1]; uint8 is divided by 255."""
    t = torch.tensor(img) if isinstance(img, np.ndarray) else img  # a copy: decoded arrays are read-only
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    return t.float()


def reference_channels(test: np.ndarray | torch.Tensor, template: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Channels test, template, |test - template|: (3, H, W) float32 in [0, 1] for grey images.

    Inputs are uint8 (0-255) or float (0-1) arrays/tensors, (H, W) or (C, H, W), aligned and of
    one size; C-channel inputs give 3C channels (all test channels, then template, then difference).
    A detector built with ``in_chans=3`` then sees the template; the difference channel is where
    a PCB defect stands out, the template lets the net discount alignment noise.
    """
    a, b = as_unit_tensor(test), as_unit_tensor(template)
    if a.shape != b.shape:
        raise ValueError(f"test {tuple(a.shape)} and template {tuple(b.shape)} differ in shape")
    return torch.cat([a, b, (a - b).abs()], dim=0)
