"""adrcs.transforms.boxes: boxes stay on the pixels they enclose through resize, flips and shifts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adrcs.transforms.boxes import hflip_with_boxes, resize_with_boxes, shift_with_boxes, vflip_with_boxes

H, W = 48, 64
RECTS = [(5, 10, 25, 20), (40, 30, 60, 44)]  # x1 y1 x2 y2, edges exclusive


def _scene(channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A black H x W uint8 image with white rectangles, and their exact boxes."""
    img = np.zeros((H, W), np.uint8)
    for x1, y1, x2, y2 in RECTS:
        img[y1:y2, x1:x2] = 255
    if channels:
        img = np.repeat(img[:, :, None], channels, axis=2)
    return img, np.array(RECTS, np.float32)


def _bright_bbox(img: np.ndarray, box: np.ndarray, margin: int = 2) -> tuple[int, int, int, int]:
    """Tight box (x1, y1, x2, y2) of the bright pixels near `box`."""
    g = img if img.ndim == 2 else img[..., 0]
    x1, y1, x2, y2 = box
    y0, x0 = max(int(y1) - margin, 0), max(int(x1) - margin, 0)
    win = g[y0:int(np.ceil(y2)) + margin, x0:int(np.ceil(x2)) + margin] > 127
    ys, xs = np.nonzero(win)
    return x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1


def _assert_exact(img: np.ndarray, boxes: np.ndarray) -> None:
    for b in boxes:
        assert _bright_bbox(img, b) == tuple(int(v) for v in b)


@pytest.mark.parametrize("flip", [hflip_with_boxes, vflip_with_boxes])
def test_flips_keep_boxes_on_the_rectangles(flip):
    img, boxes = _scene()
    out, ob = flip(img, boxes)
    assert out.shape == img.shape and ob.dtype == np.float32
    _assert_exact(out, ob)
    back, bb = flip(out, ob)
    assert np.array_equal(back, img) and np.array_equal(bb, boxes)
    assert np.array_equal(boxes, np.array(RECTS, np.float32))  # input untouched


def test_flips_on_torch_and_channels():
    img, boxes = _scene()
    t = torch.from_numpy(img)[None].repeat(3, 1, 1)  # (C, H, W)
    out, ob = hflip_with_boxes(t, torch.from_numpy(boxes))
    assert isinstance(out, torch.Tensor) and isinstance(ob, torch.Tensor) and out.shape == (3, H, W)
    _assert_exact(out[0].numpy(), ob.numpy())
    hwc, _ = _scene(channels=3)
    out, ob = vflip_with_boxes(hwc, boxes)
    assert out.shape == (H, W, 3)
    _assert_exact(out, ob)


def test_resize_nearest_exact_upscale():
    img, boxes = _scene()
    out, ob = resize_with_boxes(img, boxes, (96, 128), interpolation="nearest")
    assert out.shape == (96, 128) and out.dtype == np.uint8
    np.testing.assert_array_equal(ob, boxes * 2)
    _assert_exact(out, ob)


@pytest.mark.parametrize("size", [32, (40, 100), (24, 32)])
def test_resize_bilinear_box_still_contains_rectangle(size):
    img, boxes = _scene()
    out, ob = resize_with_boxes(img, boxes, size)
    h, w = (size, size) if isinstance(size, int) else size
    assert out.shape == (h, w) and out.dtype == np.uint8
    for b in ob:
        bx1, by1, bx2, by2 = _bright_bbox(out, b)
        # antialiasing blurs edges by at most a pixel
        assert bx1 >= np.floor(b[0]) - 1 and by1 >= np.floor(b[1]) - 1
        assert bx2 <= np.ceil(b[2]) + 1 and by2 <= np.ceil(b[3]) + 1
        inner = out[int(np.ceil(b[1])) + 1:int(b[3]) - 1, int(np.ceil(b[0])) + 1:int(b[2]) - 1]
        assert inner.size and inner.min() > 127


def test_resize_torch_batch_and_float():
    img, boxes = _scene()
    t = torch.from_numpy(img).float()[None, None] / 255  # (1, 1, H, W)
    out, ob = resize_with_boxes(t, torch.from_numpy(boxes).double(), (96, 128), interpolation="nearest")
    assert out.shape == (1, 1, 96, 128) and out.dtype == torch.float32 and ob.dtype == torch.float64
    _assert_exact((out[0, 0] * 255).byte().numpy(), ob.numpy())


def test_shift_moves_clips_and_drops():
    img, boxes = _scene()
    out, ob, keep = shift_with_boxes(img, boxes, dx=-10, dy=5)
    assert keep.tolist() == [True, True]
    np.testing.assert_array_equal(ob, [[0, 15, 15, 25], [30, 35, 50, 48]])  # first clipped left, second at the bottom
    _assert_exact(out, ob)
    assert out[:5].max() == 0 and out[:, -10:].max() == 0  # vacated rows/columns filled

    out, ob, keep = shift_with_boxes(img, boxes, dx=-30, dy=0)  # first box leaves the image entirely
    assert keep.tolist() == [False, True] and len(ob) == 1
    _assert_exact(out, ob)

    out, ob, keep = shift_with_boxes(img, boxes, dx=W, dy=0)
    assert out.max() == 0 and not keep.any() and ob.shape == (0, 4)


def test_shift_torch_matches_numpy():
    img, boxes = _scene()
    out_n, ob_n, keep_n = shift_with_boxes(img, boxes, 7, -12, fill=3)
    out_t, ob_t, keep_t = shift_with_boxes(torch.from_numpy(img)[None], torch.from_numpy(boxes), 7, -12, fill=3)
    assert np.array_equal(out_t[0].numpy(), out_n) and np.array_equal(ob_t.numpy(), ob_n)
    assert keep_t.tolist() == keep_n.tolist() and out_n[-12:].min() == 3


def test_empty_and_integer_boxes():
    img, _ = _scene()
    out, ob = hflip_with_boxes(img, np.zeros((0, 4)))
    assert ob.shape == (0, 4)
    _, ob = resize_with_boxes(img, np.array([[1, 2, 3, 4]]), (96, 128))
    assert ob.dtype == np.float32 and ob.tolist() == [[2, 4, 6, 8]]


def test_crop_moves_clips_and_drops_boxes():
    from adrcs.transforms.boxes import crop_with_boxes

    img = np.arange(H * W).reshape(H, W)
    boxes = np.array([[5, 10, 25, 20], [40, 30, 60, 44], [0, 0, 4, 4]], np.float32)
    out, ob, keep = crop_with_boxes(img, boxes, 10, 8, 40, 30)
    assert out.shape == (30, 40) and out[0, 0] == img[8, 10]
    # box 1: 15 of 20 px wide stays (75 %); box 2: x 40..50 of 40..60 and y 30..38 of 30..44 -> 29 % < 50 %
    assert keep.tolist() == [True, False, False]
    assert ob.tolist() == [[0, 2, 15, 12]]
    t_out, t_b, t_keep = crop_with_boxes(torch.from_numpy(img)[None], torch.from_numpy(boxes), 10, 8, 40, 30,
                                         min_visible=0.2)
    assert t_out.shape == (1, 30, 40) and t_keep.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="not inside"):
        crop_with_boxes(img, boxes, 50, 0, 40, 30)
