"""`DetectionDataset`: inspection images with their boxes as torchvision detection samples.

Each item is ``(image, target)``: image float32 (C, size, size) in [0, 1]; target
``{"boxes": float32 (K, 4) x1 y1 x2 y2 in resized pixels, "labels": int64 (K,)}``.
Labels are 1-based, torchvision's convention: label = class index (into `class_names`) +
`LABEL_OFFSET` (1), 0 being background. An image without boxes has (0, 4) boxes and (0,) labels.

With ``use_template=True`` the channels are test, template and |test - template|
(`reference_channels`), so C is 3 for grey images. Images are resized to a square `size`
(DeepPCB is square already; other aspect ratios are stretched, boxes follow).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from adrcs.data.image_set import ImageSet
from adrcs.models.detection import LABEL_OFFSET
from adrcs.models.detection.reference import as_unit_tensor, reference_channels
from adrcs.transforms.boxes import (crop_with_boxes, hflip_with_boxes, resize_with_boxes, shift_with_boxes,
                                    vflip_with_boxes)

Target = dict[str, torch.Tensor]


class DetectionDataset(Dataset):
    """Torch dataset over an `ImageSet`, decoding each image (and template) from disk on demand.

    size: square side the images are resized to (None keeps their own size).
    use_template: stack the defect-free template and the difference (needs a template per image).
    augment: random h/v flips, shifts up to `max_shift` of the side (content pushed out is filled
        with 0, boxes clipped or dropped) and brightness/contrast jitter; test and template get the
        same geometry and jitter, so the difference channel stays meaningful.
    crop: train on random `crop` x `crop` windows of the resized image (None: whole image). Most
        windows (p 0.75) are placed around a random box so defects stay frequent; a fully
        convolutional detector then predicts on whole images (4x cheaper steps at half the side).
    mode: "L" (grey, 1 channel) or "RGB" (3).
    paster: adds synthetic defects and their boxes before the other augmentations
        (`adrcs.synth.defect_paste.DefectPaster`); called as
        ``paster(test, template or None, boxes, 0-based labels, rng)``.
    seed: augmentation seed; each DataLoader worker draws its own stream from it.
    """

    def __init__(self, images: ImageSet, size: int | None = 640, use_template: bool = False, augment: bool = False,
                 seed: int = 0, mode: str = "L", max_shift: float = 0.05, brightness: float = 0.1,
                 contrast: float = 0.2, crop: int | None = None, paster: Callable | None = None) -> None:
        if use_template and any(t is None for t in images.templates):
            n = sum(t is None for t in images.templates)
            raise ValueError(f"use_template=True but {n} of {len(images)} images have no template")
        if size is not None and int(size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.images = images
        self.size = None if size is None else int(size)
        self.use_template = bool(use_template)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.mode = mode
        self.max_shift = float(max_shift)
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.paster = paster
        self.crop = None if crop is None or int(crop) <= 0 else int(crop)
        self._rng: np.random.Generator | None = None
        self._rng_key: object = ()

    @property
    def class_names(self) -> list[str]:
        """Defect class names; class c is detector label c + LABEL_OFFSET."""
        return list(self.images.class_names)

    @property
    def num_classes(self) -> int:
        """Number of defect classes (without background)."""
        return len(self.images.class_names)

    @property
    def in_chans(self) -> int:
        """Channels of the image tensors: 1 or 3 per image mode, tripled with `use_template`."""
        c = 1 if self.mode == "L" else 3
        return 3 * c if self.use_template else c

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        x = self._read(i)  # (C or 2C, H, W) float in [0, 1]
        boxes = torch.from_numpy(self.images.boxes[i].copy())
        labels = torch.from_numpy(self.images.box_labels[i].copy()) + LABEL_OFFSET
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x, boxes = resize_with_boxes(x, boxes, self.size)
        if self.paster is not None:
            c = x.shape[0] // 2 if self.use_template else x.shape[0]
            test, tmpl = x[:c], (x[c:] if self.use_template else None)
            test, boxes, labels = self.paster(test, tmpl, boxes, labels - LABEL_OFFSET, self._generator())
            x, labels = (torch.cat([test, tmpl]) if tmpl is not None else test), labels + LABEL_OFFSET
        if self.augment:
            x, boxes, labels = self._augment(x, boxes, labels)
        if self.crop is not None and (x.shape[-1] > self.crop or x.shape[-2] > self.crop):
            x, boxes, labels = self._crop(x, boxes, labels)
        if self.use_template:
            c = x.shape[0] // 2
            x = reference_channels(x[:c], x[c:])
        boxes, labels = _clean(boxes, labels, x.shape[-1], x.shape[-2])
        return x.contiguous(), {"boxes": boxes, "labels": labels}

    # ------------------------------------------------------------ internals

    def _read(self, i: int) -> torch.Tensor:
        x = _chw(self.images.read_image(i, self.mode))
        if not self.use_template:
            return x
        t = _chw(self.images.read_template(i, self.mode))
        if t.shape != x.shape:  # templates are aligned, but may be stored at another resolution
            t = F.interpolate(t[None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0]
        return torch.cat([x, t], dim=0)

    def template_tensor(self, i: int, hw: tuple[int, int]) -> torch.Tensor:
        """Image `i`'s template as float (C, h, w) in [0, 1], resized (bilinear) to `hw`."""
        t = _chw(self.images.read_template(i, self.mode))
        if tuple(t.shape[-2:]) != tuple(hw):
            t = F.interpolate(t[None], size=tuple(hw), mode="bilinear", align_corners=False, antialias=True)[0]
        return t

    def _generator(self) -> np.random.Generator:
        """One stream per process: the main one seeded by `seed`, each worker by (seed, worker seed)."""
        info = torch.utils.data.get_worker_info()
        key = None if info is None else info.seed
        if self._rng is None or self._rng_key != key:
            self._rng = np.random.default_rng(self.seed if info is None else [self.seed, info.seed % 2**63])
            self._rng_key = key
        return self._rng

    def _augment(self, x: torch.Tensor, boxes: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = self._generator()
        if rng.random() < 0.5:
            x, boxes = hflip_with_boxes(x, boxes)
        if rng.random() < 0.5:
            x, boxes = vflip_with_boxes(x, boxes)
        if self.max_shift > 0 and rng.random() < 0.5:
            h, w = x.shape[-2:]
            dx = int(rng.integers(-int(self.max_shift * w), int(self.max_shift * w) + 1))
            dy = int(rng.integers(-int(self.max_shift * h), int(self.max_shift * h) + 1))
            x, boxes, keep = shift_with_boxes(x, boxes, dx, dy, fill=0.0)
            labels = labels[torch.as_tensor(keep)]
        if self.brightness > 0 or self.contrast > 0:  # the same jitter on test and template
            c = 1.0 + rng.uniform(-self.contrast, self.contrast)
            b = rng.uniform(-self.brightness, self.brightness)
            n = x.shape[0] // 2 if self.use_template else x.shape[0]
            m = x[:n].mean()
            x = ((x - m) * c + m + b).clamp_(0.0, 1.0)
        return x, boxes, labels


    def _crop(self, x: torch.Tensor, boxes: torch.Tensor,
              labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = self._generator()
        h, w = x.shape[-2:]
        cw, ch = min(self.crop, w), min(self.crop, h)
        if len(boxes) and rng.random() < 0.75:  # a window that holds the centre of a random box
            b = boxes[int(rng.integers(len(boxes)))].tolist()
            cx, cy = int((b[0] + b[2]) / 2), int((b[1] + b[3]) / 2)
            x0 = int(rng.integers(max(0, cx - cw + 1), max(0, min(cx, w - cw)) + 1))
            y0 = int(rng.integers(max(0, cy - ch + 1), max(0, min(cy, h - ch)) + 1))
        else:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        x, boxes, keep = crop_with_boxes(x, boxes, x0, y0, cw, ch)
        return x, boxes, labels[torch.as_tensor(keep)]


def _chw(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [0, 1]."""
    return as_unit_tensor(img if img.ndim == 2 else np.moveaxis(img, -1, 0))


def _clean(boxes: torch.Tensor, labels: torch.Tensor, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip boxes to the image and drop empty ones (torchvision rejects zero width or height)."""
    boxes = boxes.float().reshape(-1, 4)
    hi = torch.tensor([w, h, w, h], dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp(min=0.0), hi)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep].contiguous(), labels[keep].long().contiguous()


def detection_collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Batch as torchvision detectors take it: (list of image tensors, list of target dicts)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
