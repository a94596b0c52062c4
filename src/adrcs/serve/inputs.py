"""What the service accepts: wafer maps as JSON arrays or uploaded files, inspection images; and how inputs are stored.

Every parser raises `InputError` (422) with a one-line message naming the upload, never a server path.
Uploads are untrusted and nothing in them is ever unpickled: a wafer-map upload is JSON, a ``.npz`` (read
with ``allow_pickle=False``; ``adrcs convert`` writes one from any file the CLI reads) or a fab file, read
by `serve/uploads.py`; a pickle gets 415 with that hint. Before anything is decompressed, the npz members' sizes and array
headers are checked against the limits (`service_limits`, derived from ``--max-request-mb``), so a
small file that expands to gigabytes is refused (413) without expanding it. Map side, map count and
image pixel limits apply to every path (JSON, uploads, images).
"""
from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adrcs.data.formats import to_die_codes
from adrcs.data.map_blob import decode_map, encode_map  # noqa: F401 (stored input blobs)
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError

MAX_MAP_SIDE = 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_NPZ_MEMBERS = 16
UPLOAD_SUFFIXES = (".npz", ".json")
PICKLE_HINT = ("pickle files are not accepted by the service (a pickle can run code): convert it with "
               "`adrcs convert IN OUT.npz` and upload the .npz, or send the maps as JSON")


def service_limits(max_request_bytes: int, max_maps: int) -> InputLimits:
    """The input limits of the service: uploads expand to at most 4x ``--max-request-mb``."""
    return InputLimits.for_service(int(max_request_bytes), int(max_maps))


def maps_from_json(maps: Sequence[Any], max_side: int = MAX_MAP_SIDE) -> list[np.ndarray]:
    """Nested lists (one 2-D grid per map) -> uint8 die-code arrays 0/1/2 (0/128/255 accepted)."""
    if not isinstance(maps, (list, tuple)) or len(maps) == 0:
        raise InputError(None, "maps must be a non-empty list of 2-D arrays")
    try:  # fast path: maps of one size convert in one call
        stack = np.asarray(maps)
    except (ValueError, TypeError, OverflowError):
        stack = None
    if (stack is not None and stack.ndim == 3 and stack.dtype.kind in "iu" and 0 < stack.shape[1] <= max_side
            and 0 < stack.shape[2] <= max_side and stack.min() >= 0 and stack.max() <= 255):
        try:
            return to_die_codes(stack.astype(np.uint8), "request")
        except InputError:
            pass  # the per-map path below names the bad map
    arrays = []
    for i, m in enumerate(maps):
        try:
            a = np.asarray(m)
        except (ValueError, TypeError, OverflowError):
            raise InputError(None, f"map {i}: rows of different lengths (a map must be a rectangular 2-D grid)")
        if a.ndim != 2 or a.dtype == object:
            raise InputError(None, f"map {i}: expected a rectangular 2-D grid of die codes, got shape {a.shape}")
        if a.size == 0 or max(a.shape) > max_side:
            raise InputError(None, f"map {i}: size {a.shape[0]}x{a.shape[1]} outside 1..{max_side} per side")
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


def upload_kind(content: bytes) -> str:
    """"npz", "json" or "pickle"/"other" from the first bytes (the file name is not trusted)."""
    head = content[:8]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if content[:64].lstrip()[:1] == b"{":
        return "json"
    if head[:1] == b"\x80" or head.startswith((b"\xfd7zXZ", b"\x1f\x8b", b"BZh", b"\x28\xb5\x2f\xfd")):
        return "pickle"  # a pickle, or a compressed file (the loader's compressed formats are all pickles)
    return "other"


def check_npz(content: bytes, name: str, limits: Any) -> int:
    """Refuse an npz whose members would expand past ``limits`` or hold objects, reading only headers; returns the
    bytes its members expand to."""
    cap = int(limits.max_uncompressed_bytes)
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            infos = z.infolist()
            if not infos or len(infos) > MAX_NPZ_MEMBERS:
                raise InputError(name, f"an npz upload holds 1..{MAX_NPZ_MEMBERS} arrays, this one {len(infos)}")
            total = sum(i.file_size for i in infos)
            if total > cap:
                raise InputTooLarge(name, f"expands to {total} bytes, over the {cap} byte limit for uploads")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise InputError(name, f"not an npz file (member {info.filename[:60]!r} is not a .npy array)")
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise UnsupportedMediaError(name, "npz holds pickled objects; " + PICKLE_HINT.split(": ", 1)[1])
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > cap or nbytes > info.file_size:
                    raise InputTooLarge(name, f"array {info.filename[:60]!r} of shape {tuple(shape)} is over the "
                                              f"{cap} byte limit for uploads")
                if len(shape) == 3 and max(shape[1:]) > limits.max_map_side:
                    raise InputTooLarge(name, f"maps of {shape[1]}x{shape[2]}: over {limits.max_map_side} per side")
        return total
    except InputError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, KeyError):
        raise InputError(name, "not a readable npz file") from None


def check_maps(maps: Sequence[np.ndarray], name: str | None, limits: Any) -> None:
    """Map count and side limits on parsed maps."""
    if len(maps) > limits.max_maps:
        raise InputTooLarge(name, f"{len(maps)} maps in one request; the limit is {limits.max_maps}")
    for i, m in enumerate(maps):
        if m.ndim != 2 or m.size == 0 or max(m.shape) > limits.max_map_side:
            raise InputTooLarge(name, f"map {i}: size {'x'.join(map(str, m.shape))} outside "
                                      f"1..{limits.max_map_side} per side")


def image_from_upload(filename: str | None, content: bytes, mode: str = "L",
                      max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an uploaded image (PNG, JPEG, BMP, TIFF, ...) to uint8 (H, W) for mode L or (H, W, 3) for RGB."""
    from PIL import Image, UnidentifiedImageError

    name = Path(filename or "image").name[:100] or "image"
    if not content:
        raise InputError(name, "empty upload")
    try:
        with Image.open(io.BytesIO(content)) as im:
            if im.width * im.height > max_pixels:
                raise InputTooLarge(name, f"image of {im.width}x{im.height} pixels is over the {max_pixels} "
                                          "pixel limit")
            return np.asarray(im.convert(mode))
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InputError(name, "not a readable image") from None


def encode_png(img: np.ndarray) -> bytes:
    """uint8 image -> PNG bytes (stored input blob for images)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
