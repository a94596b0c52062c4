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


def _scale(shape: tuple[int, ...], scale: int | None) -> int:
    return int(scale) if scale else max(1, TARGET_PX // max(1, max(shape)))


def _fit(m: np.ndarray) -> np.ndarray:
    """Every `step`-th die of a map larger than MAX_RENDER_SIDE (drawn at most that large)."""
    step = -(-max(m.shape) // MAX_RENDER_SIDE)
    return m[::step, ::step] if step > 1 else m


def map_rgb(die_codes: np.ndarray, scale: int | None = None) -> np.ndarray:
    """Die codes 0/1/2 -> (H*scale, W*scale, 3) uint8, each die a `scale` px square (default ~256 px across)."""
    m = np.clip(_fit(np.asarray(die_codes)), 0, 2).astype(np.intp)
    s = _scale(m.shape, scale)
    return DIE_RGB[m].repeat(s, axis=0).repeat(s, axis=1)


def bin_rgb(bins: np.ndarray, scale: int | None = None) -> np.ndarray:
    """A bin grid (int, -1 = no die) -> RGB with one stable colour per bin (tab20), white where no die."""
    from matplotlib import colormaps

    b = _fit(np.asarray(bins))
    table = (np.array(colormaps["tab20"].colors) * 255).astype(np.uint8)
    rgb = table[np.mod(b, len(table))]
    rgb[b < 0] = 255
    s = _scale(b.shape, scale)
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


def rate_rgb(rate: np.ndarray, scale: int | None = None) -> np.ndarray:
    """A failure-rate map (0..1, NaN off-wafer) -> RGB (white to dark red), white off-wafer."""
    r = _fit(np.asarray(rate, np.float64))
    t = np.clip(np.nan_to_num(r, nan=0.0), 0, 1)[..., None]
    lo, hi = np.array([236, 240, 241], np.float64), np.array([146, 20, 12], np.float64)
    rgb = (lo + (hi - lo) * t).astype(np.uint8)
    rgb[np.isnan(r)] = 255
    s = _scale(r.shape, scale)
    return rgb.repeat(s, axis=0).repeat(s, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def map_png(die_codes: np.ndarray, scale: int | None = None, bins: np.ndarray | None = None) -> bytes:
    """PNG of a wafer map: by die code, or by bin when `bins` is given."""
    return png_bytes(bin_rgb(bins, scale) if bins is not None else map_rgb(die_codes, scale))
