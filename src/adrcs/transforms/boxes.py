"""Image transforms that carry their boxes along: resize, horizontal/vertical flip, shift, crop.

Images: numpy (H, W) or (H, W, C), or torch tensors (..., H, W) (channels first, as torchvision).
Boxes: (K, 4) ``x1 y1 x2 y2`` in pixels, numpy or torch; each function returns the image and
the boxes in the types it was given (integer boxes come back as float).

Coordinates are continuous: pixel (row r, column c) covers ``[c, c+1) x [r, r+1)``, so the box
around pixels c0..c1 has x1 = c0, x2 = c1 + 1. With that convention a flip maps x -> W - x and a
resize scales every coordinate by the size ratio, exactly.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)


def resize_with_boxes(img: Array, boxes: Boxes, size: int | tuple[int, int],
                      interpolation: str = "bilinear") -> tuple[Array, Boxes]:
    """Resize to `size` (an int for square, or (height, width)) and scale the boxes to match.

    interpolation: "bilinear" (antialiased when shrinking) or "nearest". Integer images are
    rounded and clipped back to their dtype.
    """
    h, w = _hw(img)
    new_h, new_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if new_h < 1 or new_w < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = _resize(img, (new_h, new_w), interpolation)
    scale = [new_w / w, new_h / h, new_w / w, new_h / h]
    b = _float_boxes(boxes)
    if isinstance(b, torch.Tensor):
        return out, b * torch.tensor(scale, dtype=b.dtype, device=b.device)
    return out, b * np.asarray(scale, b.dtype)


def hflip_with_boxes(img: Array, boxes: Boxes) -> tuple[Array, Boxes]:
    """Mirror left-right: x -> W - x (x1 and x2 swap roles)."""
    _, w = _hw(img)
    out = img.flip(-1) if isinstance(img, torch.Tensor) else np.ascontiguousarray(img[:, ::-1])
    b = _copy(_float_boxes(boxes))
    b[:, 0], b[:, 2] = w - _col(boxes, 2), w - _col(boxes, 0)
    return out, b


def vflip_with_boxes(img: Array, boxes: Boxes) -> tuple[Array, Boxes]:
    """Mirror top-bottom: y -> H - y (y1 and y2 swap roles)."""
    h, _ = _hw(img)
    out = img.flip(-2) if isinstance(img, torch.Tensor) else np.ascontiguousarray(img[::-1])
    b = _copy(_float_boxes(boxes))
    b[:, 1], b[:, 3] = h - _col(boxes, 3), h - _col(boxes, 1)
    return out, b


def shift_with_boxes(img: Array, boxes: Boxes, dx: int, dy: int, fill: float = 0,
                     min_size: float = 1.0) -> tuple[Array, Boxes, Boxes]:
    """Move the content `dx` pixels right and `dy` down (negative: left/up), filling with `fill`.

    Boxes move along; a box partly pushed out is clipped to the image, one left narrower or
    shorter than `min_size` pixels (e.g. entirely outside) is dropped. Returns
    ``(image, kept boxes, keep)`` where `keep` is the boolean mask over the input boxes, to
    select their labels with.
    """
    dx, dy = int(dx), int(dy)
    h, w = _hw(img)
    (sy, ty), (sx, tx) = _spans(h, dy), _spans(w, dx)
    if isinstance(img, torch.Tensor):
        out = torch.full_like(img, fill)
        if sy is not None and sx is not None:
            out[..., ty, tx] = img[..., sy, sx]
    else:
        out = np.full_like(img, fill)
        if sy is not None and sx is not None:
            out[ty, tx] = img[sy, sx]
    b = _float_boxes(boxes)
    if isinstance(b, torch.Tensor):
        moved = b + torch.tensor([dx, dy, dx, dy], dtype=b.dtype, device=b.device)
        lo = torch.zeros(4, dtype=b.dtype, device=b.device)
        hi = torch.tensor([w, h, w, h], dtype=b.dtype, device=b.device)
        moved = torch.minimum(torch.maximum(moved, lo), hi)
    else:
        moved = np.clip(b + np.asarray([dx, dy, dx, dy], b.dtype), 0, np.asarray([w, h, w, h], b.dtype))
    keep = ((moved[:, 2] - moved[:, 0]) >= min_size) & ((moved[:, 3] - moved[:, 1]) >= min_size)
    return out, moved[keep], keep


def crop_with_boxes(img: Array, boxes: Boxes, x0: int, y0: int, width: int, height: int,
                    min_visible: float = 0.5) -> tuple[Array, Boxes, Boxes]:
    """The `width` x `height` window at (`x0`, `y0`) of `img` (inside the image), boxes moved into it.

    A box keeps its clipped part when at least `min_visible` of its area lies in the window
    (a defect cut in half is still that defect); otherwise it is dropped. Returns
    ``(crop, kept boxes, keep)`` with `keep` the boolean mask over the input boxes.
    """
    h, w = _hw(img)
    x0, y0, width, height = int(x0), int(y0), int(width), int(height)
    if width < 1 or height < 1 or x0 < 0 or y0 < 0 or x0 + width > w or y0 + height > h:
        raise ValueError(f"crop window {width}x{height} at ({x0}, {y0}) is not inside the {w}x{h} image")
    out = img[..., y0:y0 + height, x0:x0 + width] if isinstance(img, torch.Tensor) else img[y0:y0 + height,
                                                                                               x0:x0 + width]
    b = _float_boxes(boxes)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    if isinstance(b, torch.Tensor):
        off = torch.tensor([x0, y0, x0, y0], dtype=b.dtype, device=b.device)
        hi = torch.tensor([width, height, width, height], dtype=b.dtype, device=b.device)
        moved = torch.minimum(torch.clamp(b - off, min=0), hi)
    else:
        moved = np.clip(b - np.asarray([x0, y0, x0, y0], b.dtype), 0, np.asarray([width, height] * 2, b.dtype))
    vis = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (vis > 0) & (vis >= min_visible * area)
    return out, moved[keep], keep


# ---------------------------------------------------------------- helpers


def _hw(img: np.ndarray | torch.Tensor) -> tuple[int, int]:
    if isinstance(img, torch.Tensor):
        if img.ndim < 2:
            raise ValueError(f"image tensor must be (..., H, W), got shape {tuple(img.shape)}")
        return int(img.shape[-2]), int(img.shape[-1])
    if img.ndim not in (2, 3):
        raise ValueError(f"numpy image must be (H, W) or (H, W, C), got shape {img.shape}")
    return int(img.shape[0]), int(img.shape[1])


def _float_boxes(boxes: Boxes) -> Boxes:
    if isinstance(boxes, torch.Tensor):
        b = boxes if boxes.is_floating_point() else boxes.float()
        return b.reshape(-1, 4)
    b = np.asarray(boxes)
    return (b if np.issubdtype(b.dtype, np.floating) else b.astype(np.float32)).reshape(-1, 4)


def _copy(b: Boxes) -> Boxes:
    return b.clone() if isinstance(b, torch.Tensor) else b.copy()


def _col(boxes: Boxes, j: int) -> Boxes:
    return _float_boxes(boxes)[:, j]


def _spans(n: int, d: int) -> tuple[slice | None, slice | None]:
    """(source, target) slices along an axis of length `n` for a shift by `d`; None when nothing stays."""
    if abs(d) >= n:
        return None, None
    return (slice(0, n - d), slice(d, n)) if d >= 0 else (slice(-d, n), slice(0, n + d))


def _resize(img: Array, size: tuple[int, int], interpolation: str) -> Array:
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    is_numpy = not isinstance(img, torch.Tensor)
    t = torch.from_numpy(np.ascontiguousarray(img)) if is_numpy else img
    if is_numpy:  # (H, W) or (H, W, C) -> (C, H, W)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    lead = t.shape[:-2]
    x = t.reshape(1, -1, *t.shape[-2:]).float()
    if interpolation == "nearest":
        y = F.interpolate(x, size=size, mode="nearest-exact")
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    y = y.reshape(*lead, *size)
    if not t.is_floating_point():
        info = torch.iinfo(t.dtype) if t.dtype != torch.bool else None
        y = y.round().clamp(info.min, info.max) if info is not None else y > 0.5
    y = y.to(t.dtype)
    if is_numpy:
        y = y[0] if img.ndim == 2 else y.permute(1, 2, 0)
        return y.numpy()
    return y
