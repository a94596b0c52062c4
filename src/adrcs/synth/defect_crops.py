"""Defect patches: each annotated box with its surroundings, cut out and resized to a fixed square.

A window is the box grown by `margin` along each axis around its centre (1.5: the box fills the
middle two thirds), resampled to `patch` x `patch` with `roi_align` (outside the image reads 0).
Each patch has a *context*: the template's patch when the data has templates (what the board
should look like there), otherwise the test patch with the box blanked to its surroundings' mean
(an inpainting context). The defect GAN learns test patch | context, class; pasting reverses the
cut with `paste_window`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from adrcs.data.image_set import ImageSet

DEFAULT_MARGIN = 1.5


def windows_for(boxes: torch.Tensor, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """(K, 4) boxes x1 y1 x2 y2 -> (K, 4) windows: each box grown `margin` times about its centre."""
    b = boxes.float().reshape(-1, 4)
    c = (b[:, :2] + b[:, 2:]) / 2
    half = (b[:, 2:] - b[:, :2]) * margin / 2
    return torch.cat([c - half, c + half], dim=1)


def box_mask(patch: int, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """(1, patch, patch) float mask, 1 where the box lies inside its window's patch."""
    lo = int(round(patch * (1 - 1 / margin) / 2))
    m = torch.zeros(1, patch, patch)
    m[:, lo:patch - lo, lo:patch - lo] = 1.0
    return m


def cut_patches(img: torch.Tensor, windows: torch.Tensor, patch: int) -> torch.Tensor:
    """(C, H, W) image, (K, 4) windows -> (K, C, patch, patch) bilinear samples (0 outside the image)."""
    if len(windows) == 0:
        return img.new_zeros((0, img.shape[0], patch, patch))
    return roi_align(img[None].float(), [windows.float()], output_size=patch, spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


def inpainting_context(patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patches with the box area replaced by the mean of each patch's surroundings."""
    ring = 1 - mask
    mean = (patches * ring).sum(dim=(-2, -1), keepdim=True) / ring.sum().clamp(min=1)
    return patches * ring + mean * mask


def paste_window(img: torch.Tensor, patch: torch.Tensor, window: tuple[int, int, int, int], margin: float) -> None:
    """Resize `patch` (C, P, P) to the integer `window` (x0, y0, x1, y1, inside `img`) and write its box
    part into `img` (C, H, W) in place; the window's margin keeps the original pixels."""
    x0, y0, x1, y1 = window
    win = F.interpolate(patch[None], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
    m = F.interpolate(box_mask(patch.shape[-1], margin)[None], size=(y1 - y0, x1 - x0), mode="nearest")[0] > 0.5
    region = img[:, y0:y1, x0:x1]
    img[:, y0:y1, x0:x1] = torch.where(m, win.clamp(0, 1).to(region.dtype), region)


@dataclass
class DefectCrops:
    """Training patches of a defect GAN.

    test: (N, C, P, P) float in [0, 1], the defect with its surroundings.
    context: (N, C, P, P) what the generator is given (template patch, or inpainting context).
    labels: (N,) 0-based class indices into `class_names`.
    sizes: (N, 2) box width, height in the pixels the detector trains at (for pasting).
    """

    test: torch.Tensor
    context: torch.Tensor
    labels: torch.Tensor
    sizes: np.ndarray
    class_names: list[str]
    uses_template: bool
    margin: float

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def collect_defect_crops(images: ImageSet, size: int | None, use_template: bool, mode: str = "L", patch: int = 32,
                         margin: float = DEFAULT_MARGIN, min_box: float = 4.0) -> DefectCrops:
    """Cut every box of `images` (resized like the detector sees them, `size`) into a patch and its context.

    Boxes smaller than `min_box` pixels on a side are skipped (nothing to learn from them).
    """
    from adrcs.engine.detection_data import DetectionDataset

    ds = DetectionDataset(images, size=size, use_template=False, augment=False, mode=mode)
    mask = box_mask(patch, margin)
    tests, contexts, labels, sizes = [], [], [], []
    for i in range(len(images)):
        boxes = torch.from_numpy(images.boxes[i]).float().reshape(-1, 4)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= min_box).all(dim=1)
        if not keep.any():
            continue
        x, target = ds[i]  # resized test image, boxes in resized pixels (same order, none dropped)
        b = target["boxes"]
        keep = ((b[:, 2:] - b[:, :2]) >= min_box).all(dim=1)
        b, lab = b[keep], target["labels"][keep] - 1
        win = windows_for(b, margin)
        t = cut_patches(x, win, patch)
        if use_template:
            tmpl = ds.template_tensor(i, tuple(x.shape[-2:]))
            ctx = cut_patches(tmpl, win, patch)
        else:
            ctx = inpainting_context(t, mask)
        tests.append(t)
        contexts.append(ctx)
        labels.append(lab)
        sizes.append((b[:, 2:] - b[:, :2]).numpy())
    c = 1 if mode == "L" else 3
    if not tests:
        empty = torch.zeros(0, c, patch, patch)
        return DefectCrops(empty, empty.clone(), torch.zeros(0, dtype=torch.long), np.zeros((0, 2), np.float32),
                           list(images.class_names), use_template, margin)
    return DefectCrops(torch.cat(tests), torch.cat(contexts), torch.cat(labels).long(),
                       np.concatenate(sizes).astype(np.float32), list(images.class_names), use_template, margin)
