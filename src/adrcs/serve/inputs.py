"""What the service accepts: wafer maps as JSON arrays or uploaded files, inspection images; and how inputs are stored.

Every parser raises `InputError` with a message fit for a 422 response. Uploads are untrusted:
wafer-map files go through the loader with ``trusted=False`` (no arbitrary unpickling), images
through Pillow with a pixel limit.
"""
from __future__ import annotations

import io
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adrcs.data.formats import to_die_codes
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError

MAX_MAP_SIDE = 1024
MAX_IMAGE_PIXELS = 40_000_000
UPLOAD_SUFFIXES = (".pkl", ".pickle", ".xz", ".gz", ".bz2", ".zip", ".npz")


def maps_from_json(maps: Sequence[Any]) -> list[np.ndarray]:
    """Nested lists (one 2-D grid per map) -> uint8 die-code arrays 0/1/2 (0/128/255 accepted)."""
    if not isinstance(maps, (list, tuple)) or len(maps) == 0:
        raise InputError(None, "maps must be a non-empty list of 2-D arrays")
    try:  # fast path: maps of one size convert in one call
        stack = np.asarray(maps)
    except (ValueError, TypeError):
        stack = None
    if (stack is not None and stack.ndim == 3 and stack.dtype.kind in "iu" and 0 < stack.shape[1] <= MAX_MAP_SIDE
            and 0 < stack.shape[2] <= MAX_MAP_SIDE and stack.min() >= 0 and stack.max() <= 255):
        try:
            return to_die_codes(stack.astype(np.uint8), "request")
        except InputError:
            pass  # the per-map path below names the bad map
    arrays = []
    for i, m in enumerate(maps):
        try:
            a = np.asarray(m)
        except (ValueError, TypeError):
            raise InputError(None, f"map {i}: rows of different lengths (a map must be a rectangular 2-D grid)")
        if a.ndim != 2 or a.dtype == object:
            raise InputError(None, f"map {i}: expected a rectangular 2-D grid of die codes, got shape {a.shape}")
        if a.size == 0 or max(a.shape) > MAX_MAP_SIDE:
            raise InputError(None, f"map {i}: size {a.shape[0]}x{a.shape[1]} outside 1..{MAX_MAP_SIDE} per side")
        if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0)):
            raise InputError(None, f"map {i}: die codes must be integers (0/1/2 or 0/128/255)")
        if a.min() < 0 or a.max() > 255:
            raise InputError(None, f"map {i}: die codes must be 0/1/2 or 0/128/255, "
                                   f"found {int(a.min())}..{int(a.max())}")
        arrays.append(a.astype(np.uint8))
    try:
        return to_die_codes(arrays, "request")
    except InputError as e:
        raise InputError(None, e.problem) from None


def maps_from_upload(filename: str | None, content: bytes) -> WaferMapSet:
    """An uploaded wafer-map file (any format `adrcs.data.load` reads) -> WaferMapSet, read as untrusted."""
    from adrcs.data.loader import load

    name = Path(filename or "upload.pkl").name
    if not content:
        raise InputError(name, "empty upload")
    suffix = "".join(Path(name).suffixes[-2:]) or ".pkl"
    with tempfile.TemporaryDirectory(prefix="adrcs-upload-") as tmp:
        p = Path(tmp) / f"upload{suffix if len(suffix) < 16 else '.pkl'}"
        p.write_bytes(content)
        try:
            return load(p, trusted=False)
        except InputError as e:  # name the uploaded file, not the temporary copy
            raise InputError(name, e.problem) from None


def image_from_upload(filename: str | None, content: bytes, mode: str = "L") -> np.ndarray:
    """Decode an uploaded image (PNG, JPEG, BMP, TIFF, ...) to uint8 (H, W) for mode L or (H, W, 3) for RGB."""
    from PIL import Image, UnidentifiedImageError

    name = Path(filename or "image").name
    if not content:
        raise InputError(name, "empty upload")
    try:
        with Image.open(io.BytesIO(content)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise InputError(name, f"image of {im.width}x{im.height} pixels is too large")
            return np.asarray(im.convert(mode))
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(name, f"not a readable image ({type(e).__name__})") from None


def encode_map(m: np.ndarray) -> bytes:
    """A die-code map as .npy bytes (the stored input blob): exactly what ``np.save`` writes."""
    a = np.ascontiguousarray(m, dtype=np.uint8)
    return _npy_header(a.shape) + a.tobytes()


@lru_cache(maxsize=4096)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    # np.save's header for a C-order uint8 array of this shape (formatting it per map is most of np.save's time)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def decode_map(blob: bytes) -> np.ndarray:
    """Inverse of `encode_map`."""
    return np.load(io.BytesIO(blob), allow_pickle=False)


def encode_png(img: np.ndarray) -> bytes:
    """uint8 image -> PNG bytes (stored input blob for images)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
