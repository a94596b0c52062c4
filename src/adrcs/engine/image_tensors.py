"""Inspection images read once, resized, as one uint8 tensor (N, C, S, S) for classification."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from adrcs.data.image_set import ImageSet
from adrcs.engine.tensors import WaferTensors


def image_channels(test: np.ndarray, template: np.ndarray | None, size: int, use_template: bool) -> np.ndarray:
    """One image (H, W) grey or (H, W, 3) -> uint8 (C, size, size): the image's channels, plus template
    and |test - template| (grey) when `use_template`."""
    def resize(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))

    t = resize(test)
    chans = [t] if t.ndim == 2 else list(np.moveaxis(t, -1, 0))
    if use_template:
        ref = resize(template if template.ndim == t.ndim else template.mean(axis=-1).astype(np.uint8))
        g, r = (t, ref) if t.ndim == 2 else (t.mean(axis=-1), ref.mean(axis=-1))
        ref_chans = [ref] if ref.ndim == 2 else list(np.moveaxis(ref, -1, 0))
        chans += ref_chans + [np.abs(g.astype(np.int16) - r.astype(np.int16)).astype(np.uint8)]
    return np.stack(chans)


def decide_template(images: ImageSet, setting) -> bool:
    """`use_template` config value (auto / True / False) -> whether to stack template channels."""
    every = len(images) > 0 and all(t is not None for t in images.templates)
    if setting == "auto":
        return every
    if setting and not every:
        from adrcs.errors import InputError

        raise InputError(images.meta["source"].iloc[0] if len(images) else None,
                         "use_template is on but not every image has a template")
    return bool(setting)


def read_stack(images: ImageSet, size: int, mode: str, use_template: bool,
               step: Callable[[str], None] | None = None) -> torch.Tensor:
    """All images of a set -> uint8 tensor (N, C, size, size); `step(name)` after each image (progress)."""
    out = []
    for i in range(len(images)):
        out.append(image_channels(images.read_image(i, mode=mode),
                                  images.read_template(i, mode=mode) if use_template else None, size, use_template))
        if step is not None:
            step(Path(images.paths[i]).name)
    return torch.from_numpy(np.stack(out)) if out else torch.zeros(0, 1, size, size, dtype=torch.uint8)


class ImageTensors(WaferTensors):
    """Preprocessed images (N, C, S, S) uint8 and their whole-image labels."""

    def __init__(self, images: ImageSet, labels: np.ndarray, size: int, mode: str = "L",
                 use_template: bool = False) -> None:
        self.maps = read_stack(images, size, mode, use_template)
        self.labels = torch.from_numpy(np.asarray(labels, np.int64))
