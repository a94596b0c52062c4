"""The one wafer-map renderer on known maps: die colours, bin colours, thumbnails, stacked failure rates, PNGs."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adrcs.report.wafer_render import (DIE_RGB, bin_rgb, map_png, map_rgb, png_bytes, rate_rgb, stacked_png,
                                       stacked_rate)

MAP = np.array([[0, 1, 0],
                [1, 2, 1],
                [0, 1, 2]], np.uint8)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_die_colours_and_scale():
    rgb = map_rgb(MAP, scale=2)
    assert rgb.shape == (6, 6, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == DIE_RGB[0]).all() and (rgb[1, 1] == DIE_RGB[0]).all()   # off-wafer, 2x2 block
    assert (rgb[0, 2] == DIE_RGB[1]).all() and (rgb[2, 2] == DIE_RGB[2]).all()   # pass, fail
    assert len({tuple(c) for c in rgb.reshape(-1, 3)}) == 3
    # default: about 256 px across; codes above 2 are drawn as failing
    assert map_rgb(MAP).shape[0] == 3 * (256 // 3)
    assert (map_rgb(np.array([[7]]), scale=1)[0, 0] == DIE_RGB[2]).all()


def test_thumbnails_stay_within_max_px():
    assert map_rgb(MAP, scale=2, max_px=96).shape[:2] == (6, 6)        # small maps keep 2 px per die
    assert map_rgb(np.ones((40, 30), np.uint8), scale=2, max_px=96).shape[:2] == (80, 60)
    assert map_rgb(np.ones((60, 60), np.uint8), max_px=96).shape[:2] == (60, 60)   # 1 px per die
    big = map_rgb(np.ones((300, 150), np.uint8), max_px=96)             # every 4th die
    assert max(big.shape[:2]) <= 96 and big.shape[:2] == (75, 38)


def test_bin_colours_are_stable_and_white_off_wafer():
    bins = np.array([[-1, 1, 1], [3, 1, 25]], np.int32)
    rgb = bin_rgb(bins, scale=1)
    assert (rgb[0, 0] == 255).all()
    assert (rgb[0, 1] == rgb[0, 2]).all() and (rgb[0, 1] == rgb[1, 1]).all()
    assert not (rgb[0, 1] == rgb[1, 0]).all()
    assert (bin_rgb(np.array([[3]]), scale=1)[0, 0] == rgb[1, 0]).all()   # same bin, same colour in any map
    # by bin through map_png; the die codes are ignored then
    assert (_png(map_png(MAP[:2], scale=1, bins=bins)) == rgb).all()


def test_stacked_rate_on_known_maps():
    a = np.array([[0, 1], [2, 2]], np.uint8)
    b = np.array([[0, 2], [1, 2]], np.uint8)
    c = np.array([[0, 1], [0, 2]], np.uint8)
    rate = stacked_rate([a, b, c])
    assert np.isnan(rate[0, 0])
    assert rate[0, 1] == pytest.approx(1 / 3) and rate[1, 0] == pytest.approx(1 / 2) and rate[1, 1] == 1.0
    # a map of another size is resized (nearest) to the most common shape
    big = np.kron(np.array([[0, 2], [2, 2]], np.uint8), np.ones((2, 2), np.uint8))
    assert stacked_rate([a, a, big]).shape == (2, 2)
    assert stacked_rate([a, a, big])[0, 1] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        stacked_rate([])


def test_rate_colours_and_stacked_png():
    rgb = rate_rgb(np.array([[np.nan, 0.0, 1.0]]), scale=1)
    assert (rgb[0, 0] == 255).all()
    assert tuple(rgb[0, 1]) == (236, 240, 241) and tuple(rgb[0, 2]) == (146, 20, 12)
    png = _png(stacked_png([MAP, MAP], scale=3))
    assert png.shape == (9, 9, 3) and tuple(png[3, 3]) == (146, 20, 12) and tuple(png[0, 0]) == (255, 255, 255)
    assert max(_png(stacked_png([np.ones((200, 200), np.uint8)] * 2, max_px=64)).shape[:2]) <= 64


def test_png_round_trip_and_the_service_uses_the_same_renderer():
    from adrcs.serve.render import wafer_map_png

    data = map_png(MAP, scale=4)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (_png(data) == map_rgb(MAP, scale=4)).all()
    assert wafer_map_png(MAP, 4) == data
    assert _png(png_bytes(np.zeros((2, 3, 3), np.uint8))).shape == (2, 3, 3)
