"""adrcs.engine.detection_data: samples in torchvision's detection format, boxes kept on the defects.

`helpers.images.make_box_set` writes small grey PNGs with bright
(class 0) and dark (class 1) rectangles on a noisy mid-grey background, plus defect-free templates.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
from helpers.images import BRIGHT, DARK, make_box_set

from adrcs.data.image_set import ImageSet
from adrcs.engine.detection_data import DetectionDataset, detection_collate


@pytest.fixture
def box_set(tmp_path) -> ImageSet:
    return make_box_set(tmp_path / "imgs", n=3, empty_last=True)


def _assert_on_rectangles(x: torch.Tensor, target: dict) -> None:
    """Every box covers exactly its rectangle: all pixels inside have the class value, its border ring none."""
    img = (x[0] * 255).round().numpy()
    for box, label in zip(target["boxes"].numpy(), target["labels"].numpy()):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        value = BRIGHT if label == 1 else DARK
        assert (img[y1:y2, x1:x2] == value).all()
        y0, x0 = max(y1 - 1, 0), max(x1 - 1, 0)
        win = img[y0:y2 + 1, x0:x2 + 1]
        ring = np.ones(win.shape, bool)
        ring[y1 - y0:y2 - y0, x1 - x0:x2 - x0] = False
        assert not (win[ring] == value).any()


def test_shapes_resize_and_label_offset(box_set):
    ds = DetectionDataset(box_set, size=64)
    assert len(ds) == 3 and ds.in_chans == 1 and ds.num_classes == 2
    x, t = ds[0]
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
    assert torch.allclose(t["boxes"], torch.from_numpy(box_set.boxes[0]) * 0.5)
    assert t["labels"].tolist() == (box_set.box_labels[0] + 1).tolist()  # 1-based: 0 is background
    x, t = ds[2]  # no defects
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)
    images, targets = detection_collate([ds[0], ds[2]])
    assert isinstance(images, list) and len(images) == len(targets) == 2


def test_augmentation_keeps_boxes_on_the_rectangles(box_set):
    flips = DetectionDataset(box_set, size=128, augment=True, brightness=0, contrast=0, max_shift=0.2, seed=1)
    plain = DetectionDataset(box_set, size=128)
    moved = 0
    for _ in range(6):
        for i in range(2):
            x, t = flips[i]
            _assert_on_rectangles(x, t)
            moved += not torch.equal(t["boxes"], plain[i][1]["boxes"])
    assert moved > 0
    _assert_on_rectangles(*plain[0])


def test_jitter_and_determinism(box_set):
    a = DetectionDataset(box_set, size=128, augment=True, seed=3)
    b = DetectionDataset(box_set, size=128, augment=True, seed=3)
    for _ in range(3):
        (xa, ta), (xb, tb) = a[0], b[0]
        assert torch.equal(xa, xb) and torch.equal(ta["boxes"], tb["boxes"])
    jitter = DetectionDataset(box_set, size=128, augment=True, max_shift=0, seed=0)
    values = set()
    for _ in range(4):
        x, t = jitter[1]
        assert len(t["boxes"]) == len(box_set.boxes[1])  # no shift: no box lost
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        x1, y1, x2, y2 = t["boxes"][0].round().long().tolist()
        patch = x[0, y1:y2, x1:x2]
        assert float(patch.max() - patch.min()) < 1e-5  # a rectangle stays uniform under the jitter
        values.add(round(float(patch[0, 0]), 4))
    assert len(values) > 1  # ... but its level changes


def test_template_channels(box_set, tmp_path):
    for augment in (False, True):
        ds = DetectionDataset(box_set, size=128, use_template=True, augment=augment, seed=2)
        assert ds.in_chans == 3
        x, t = ds[0]
        assert x.shape == (3, 128, 128)
        assert torch.allclose(x[2], (x[0] - x[1]).abs())
        inside = torch.zeros(128, 128, dtype=torch.bool)
        for x1, y1, x2, y2 in t["boxes"].round().long().tolist():
            inside[y1:y2, x1:x2] = True
        diff = x[2] > 1e-6
        assert diff[inside].float().mean() > 0.99 and not diff[~inside].any()  # the difference is the defects
    no_template = make_box_set(tmp_path / "plain", n=2)
    no_template.templates = [None, no_template.templates[1]]
    with pytest.raises(ValueError, match="no template"):
        DetectionDataset(no_template, use_template=True)


def test_random_crops_keep_boxes_on_the_rectangles(box_set):
    ds = DetectionDataset(box_set, size=128, augment=True, brightness=0, contrast=0, max_shift=0, seed=2, crop=48)
    with_boxes = 0
    for _ in range(8):
        for i in range(3):
            x, t = ds[i]
            assert x.shape == (1, 48, 48)
            _assert_on_rectangles(x, t)
            assert ((t["boxes"] >= 0) & (t["boxes"] <= 48)).all()
            with_boxes += len(t["boxes"]) > 0
    assert with_boxes >= 8  # windows are mostly placed on a defect
    x, _ = DetectionDataset(box_set, size=32, crop=48)[0]  # a crop larger than the image: whole image
    assert x.shape == (1, 32, 32)
