"""The in-memory inspection-image dataset: image paths, optional templates, boxes and labels.

Images stay on disk (`paths`); `read_image(i)` decodes one when needed. Every image has a
(possibly empty) array of boxes, so classification and detection data share one type:
class-folder data has whole-image `labels` and no boxes, detection data (VOC, DeepPCB) has boxes
and `labels` of -1 (use `dominant_labels()` for a whole-image label derived from the boxes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from adrcs.errors import InputError

IMAGE_MODES = ("L", "RGB")


def empty_boxes() -> np.ndarray:
    """A (0, 4) float32 box array."""
    return np.zeros((0, 4), np.float32)


@dataclass
class ImageSet:
    """Inspection images with optional defect-free templates, boxes and labels.

    paths: one image file per sample.
    templates: the sample's defect-free reference image (DeepPCB ``*_temp.jpg``), or None.
    boxes: per image, float32 (K, 4) ``x1 y1 x2 y2`` in pixels of the full-size image
        (x2 > x1, y2 > y1, inside ``[0, width] x [0, height]``); K may be 0.
    box_labels: per image, int64 (K,) class indices into `class_names`.
    labels: int64 (N,) whole-image class index; -1 where the image has none (detection data).
    class_names: class names, as found in the data.
    meta: one row per image: `source` (the file or folder loaded), `index` (position in it),
        `format`, `width`, `height` and format-specific columns.
    difficult: per image, bool (K,) flags parallel to `boxes` (VOC ``<difficult>``); all False
        when the format has none. Filled in automatically when not given.
    notes: free-form facts about the load (format, source, ...).
    """

    paths: list[Path]
    templates: list[Path | None]
    boxes: list[np.ndarray]
    box_labels: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    meta: pd.DataFrame
    difficult: list[np.ndarray] | None = None
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.paths)
        self.paths = [Path(p) for p in self.paths]
        self.templates = [None if t is None else Path(t) for t in self.templates]
        self.boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in self.boxes]
        self.box_labels = [np.asarray(b, np.int64).reshape(-1) for b in self.box_labels]
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if self.difficult is None:
            self.difficult = [np.zeros(len(b), bool) for b in self.boxes]
        self.difficult = [np.asarray(d, bool).reshape(-1) for d in self.difficult]
        lengths = {len(self.templates), len(self.boxes), len(self.box_labels), len(self.labels),
                   len(self.difficult), len(self.meta)}
        if lengths != {n}:
            raise ValueError(f"ImageSet parts disagree in length: {n} paths, {len(self.templates)} templates, "
                             f"{len(self.boxes)} box arrays, {len(self.box_labels)} box-label arrays, "
                             f"{len(self.labels)} labels, {len(self.meta)} meta rows")
        for i, (b, bl, d) in enumerate(zip(self.boxes, self.box_labels, self.difficult)):
            if not len(b) == len(bl) == len(d):
                raise ValueError(f"image {i}: {len(b)} boxes but {len(bl)} box labels and {len(d)} difficult flags")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_boxes(self) -> bool:
        """True when at least one image carries a box."""
        return any(len(b) for b in self.boxes)

    @property
    def has_templates(self) -> bool:
        """True when at least one image has a template (reference) image."""
        return any(t is not None for t in self.templates)

    @property
    def labeled_mask(self) -> np.ndarray:
        """Boolean mask of images that carry a whole-image label."""
        return self.labels >= 0

    def subset(self, index: Sequence[int] | np.ndarray) -> "ImageSet":
        """A new set holding the images at `index` (ints or a boolean mask)."""
        idx = np.arange(len(self))[np.asarray(index)] if len(self) else np.zeros(0, int)
        return ImageSet(
            paths=[self.paths[i] for i in idx],
            templates=[self.templates[i] for i in idx],
            boxes=[self.boxes[i] for i in idx],
            box_labels=[self.box_labels[i] for i in idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            meta=self.meta.iloc[idx].reset_index(drop=True),
            difficult=[self.difficult[i] for i in idx],
            notes=dict(self.notes),
        )

    def split(self, fraction: float, seed: int = 0) -> tuple["ImageSet", "ImageSet"]:
        """Fixed-seed hold-out: (train, held) with round(fraction * N) images held out.

        Stratified on the whole-image label (or, for detection data, on `dominant_labels()`)
        when every class present has at least two images and the split can hold one of each;
        a plain random split otherwise. The same seed always gives the same split.
        """
        from sklearn.model_selection import train_test_split

        if not 0.0 < fraction < 1.0:
            raise ValueError(f"split fraction must be between 0 and 1, got {fraction}")
        n = len(self)
        n_held = int(round(fraction * n))
        if n_held == 0 or n_held == n:
            raise ValueError(f"cannot hold out {fraction:.0%} of {n} images (train and held-out both need one)")
        strata = self.labels if self.labeled_mask.any() else self.dominant_labels()
        _, counts = np.unique(strata, return_counts=True)
        ok = len(counts) > 1 and counts.min() >= 2 and len(counts) <= n_held <= n - len(counts)
        train, held = train_test_split(np.arange(n), test_size=n_held, random_state=seed,
                                       stratify=strata if ok else None)
        return self.subset(np.sort(train)), self.subset(np.sort(held))

    def read_image(self, i: int, mode: str = "L") -> np.ndarray:
        """Decode image `i`: uint8 (H, W) for mode "L", (H, W, 3) for "RGB".

        A file that cannot be decoded (truncated, corrupt) raises InputError naming it.
        """
        return read_image_file(self.paths[i], mode)

    def read_template(self, i: int, mode: str = "L") -> np.ndarray | None:
        """Decode the template of image `i`, or None when it has none."""
        t = self.templates[i]
        return None if t is None else read_image_file(t, mode)

    def dominant_labels(self) -> np.ndarray:
        """Whole-image labels from the boxes: per image, the class covering the largest total
        box area (ties go to the lower class index); -1 for an image without boxes."""
        out = np.full(len(self), -1, np.int64)
        k = max(len(self.class_names), 1)
        for i, (b, bl) in enumerate(zip(self.boxes, self.box_labels)):
            if len(b):
                area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
                out[i] = int(np.argmax(np.bincount(bl, weights=area, minlength=k)))
        return out

    def class_counts(self, per: str = "auto") -> dict[str, int]:
        """Counts per class name: of boxes (`per="box"`) or of whole-image labels (`per="image"`).

        "auto" counts boxes when the set has any, whole-image labels otherwise.
        """
        if per == "auto":
            per = "box" if self.has_boxes else "image"
        if per == "box":
            values = np.concatenate(self.box_labels) if self.box_labels else np.zeros(0, np.int64)
        elif per == "image":
            values = self.labels[self.labels >= 0]
        else:
            raise ValueError(f"per must be 'auto', 'box' or 'image', got {per!r}")
        counts = np.bincount(values, minlength=len(self.class_names))
        return {c: int(n) for c, n in zip(self.class_names, counts)}

    @staticmethod
    def concat(sets: Sequence["ImageSet"]) -> "ImageSet":
        """Join sets; class lists are merged (first-seen order) and labels re-mapped."""
        if not sets:
            raise ValueError("nothing to concatenate")
        names: list[str] = []
        for s in sets:
            names += [c for c in s.class_names if c not in names]
        paths, templates, boxes, box_labels, labels, difficult = [], [], [], [], [], []
        for s in sets:
            lut = np.array([names.index(c) for c in s.class_names] + [-1], np.int64)  # -1 -> -1
            paths += s.paths
            templates += s.templates
            boxes += s.boxes
            box_labels += [lut[b] for b in s.box_labels]
            labels.append(lut[s.labels])
            difficult += s.difficult
        return ImageSet(
            paths=paths, templates=templates, boxes=boxes, box_labels=box_labels,
            labels=np.concatenate(labels), class_names=names,
            meta=pd.concat([s.meta for s in sets], ignore_index=True), difficult=difficult,
        )


def read_image_file(path: str | Path, mode: str = "L") -> np.ndarray:
    """Decode one image file to a uint8 array in PIL `mode` ("L" grey or "RGB").

    Raises InputError naming the file when it is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in IMAGE_MODES:
        raise ValueError(f"mode must be one of {IMAGE_MODES}, got {mode!r}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except FileNotFoundError as e:
        raise InputError(path, "image file not found") from e
    except UnidentifiedImageError as e:
        raise InputError(path, "not an image (PIL cannot identify the file)") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        text = " ".join(str(e).split()) or type(e).__name__
        raise InputError(path, f"cannot decode image ({text})") from e


def resolve_image_mode(mode: str) -> str:
    """"l"/"grey"/"gray" -> "L", "rgb"/"color" -> "RGB"; InputError otherwise."""
    key = str(mode).strip().lower()
    aliases = {"l": "L", "grey": "L", "gray": "L", "rgb": "RGB", "color": "RGB", "colour": "RGB"}
    if key not in aliases:
        raise InputError(None, f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")
    return aliases[key]
