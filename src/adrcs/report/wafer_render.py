"""The one wafer-map renderer: clean map pictures (no axes) for `adrcs maps`, the lot report and the service's
review page. Die colours: off-wafer, pass, fail; or one colour per bin; stacked lot maps as a failure-rate
heat map."""
from __future__ import annotations

import io

import numpy as np

# off-wafer, good die, failing die
DIE_RGB = np.array([[255, 255, 255], [159, 197, 168], [192, 57, 43]], np.uint8)
MAX_RENDER_SIDE = 1024
TARGET_PX = 256


def _scale(shape: tuple[int, ...], scale: int | None, max_px: int | None = None) -> int:
    """Pixels per die: `scale`, else about TARGET_PX across; at most `max_px` // side (never below 1)."""
    side = max(1, max(shape))
    s = int(scale) if scale else max(1, TARGET_PX // side)
    return max(1, min(s, max_px // side)) if max_px else s


def _fit(m: np.ndarray, max_px: int | None = None) -> np.ndarray:
    """Every `step`-th die of a map with more dies across than MAX_RENDER_SIDE (or `max_px`)."""
    limit = min(MAX_RENDER_SIDE, max_px) if max_px else MAX_RENDER_SIDE
    step = -(-max(m.shape) // limit) if m.size else 1
    return m[::step, ::step] if step > 1 else m


def map_rgb(die_codes: np.ndarray, scale: int | None = None, max_px: int | None = None) -> np.ndarray:
    """Die codes 0/1/2 -> (H*scale, W*scale, 3) uint8, each die a `scale` px square (default ~256 px across);
    `max_px`: at most that many pixels across (thumbnails: fewer px per die, then every n-th die)."""
    m = np.clip(_fit(np.asarray(die_codes), max_px), 0, 2).astype(np.intp)
    s = _scale(m.shape, scale, max_px)
    return DIE_RGB[m].repeat(s, axis=0).repeat(s, axis=1)


def bin_rgb(bins: np.ndarray, scale: int | None = None, max_px: int | None = None) -> np.ndarray:
    """A bin grid (int, -1 = no die) -> RGB with one stable colour per bin (tab20), white where no die."""
    from matplotlib import colormaps

    b = _fit(np.asarray(bins), max_px)
    table = (np.array(colormaps["tab20"].colors) * 255).astype(np.uint8)
    rgb = table[np.mod(b, len(table))]
    rgb[b < 0] = 255
    s = _scale(b.shape, scale, max_px)
    return rgb.repeat(s, axis=0).repeat(s, axis=1)


def stacked_rate(maps: list[np.ndarray]) -> np.ndarray:
    """Failure rate per die position across `maps` (a lot): maps of another size than the most common one are
    resized to it by nearest neighbour; NaN where no map has a die."""
    if not maps:
        raise ValueError("no maps to stack")
    shapes = [m.shape for m in maps]
    shape = max(set(shapes), key=shapes.count)
    dies = np.zeros(shape, np.float64)
    fails = np.zeros(shape, np.float64)
    for m in maps:
        if m.shape != shape:
            r = (np.arange(shape[0]) * m.shape[0] // shape[0])[:, None]
            c = (np.arange(shape[1]) * m.shape[1] // shape[1])[None, :]
            m = m[r, c]
        dies += m > 0
        fails += m == 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dies > 0, fails / np.maximum(dies, 1), np.nan)


def rate_rgb(rate: np.ndarray, scale: int | None = None, max_px: int | None = None) -> np.ndarray:
    """A failure-rate map (0..1, NaN off-wafer) -> RGB (white to dark red), white off-wafer."""
    r = _fit(np.asarray(rate, np.float64), max_px)
    t = np.clip(np.nan_to_num(r, nan=0.0), 0, 1)[..., None]
    lo, hi = np.array([236, 240, 241], np.float64), np.array([146, 20, 12], np.float64)
    rgb = (lo + (hi - lo) * t).astype(np.uint8)
    rgb[np.isnan(r)] = 255
    s = _scale(r.shape, scale, max_px)
    return rgb.repeat(s, axis=0).repeat(s, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def map_png(die_codes: np.ndarray, scale: int | None = None, bins: np.ndarray | None = None,
            max_px: int | None = None) -> bytes:
    """PNG of a wafer map: by die code, or by bin when `bins` is given; `max_px`: see `map_rgb`."""
    return png_bytes(bin_rgb(bins, scale, max_px) if bins is not None else map_rgb(die_codes, scale, max_px))


def stacked_png(maps: list[np.ndarray], scale: int | None = None, max_px: int | None = None) -> bytes:
    """PNG of a lot's stacked map: the failure rate of each die position across `maps` (see `stacked_rate`)."""
    return png_bytes(rate_rgb(stacked_rate(maps), scale, max_px))
