"""Helpers the image formats share: image-file checks, box checks, meta tables."""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from adrcs.data.limits import DEFAULT_LIMITS
from adrcs.errors import InputError, InputTooLarge

# largest width x height `image_size` accepts; `load_images(limits=...)` sets it for one load
_MAX_PIXELS: ContextVar[int] = ContextVar("adrcs_max_image_pixels", default=DEFAULT_LIMITS.max_image_pixels)


@contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Within the block, `image_size` refuses images of more than `max_pixels` pixels."""
    token = _MAX_PIXELS.set(int(max_pixels))
    try:
        yield
    finally:
        _MAX_PIXELS.reset(token)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image_name(p: Path) -> bool:
    """True for a visible file name with an image extension (any case)."""
    return p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")


def short(text: Any, limit: int = 80) -> str:
    """`text` on one line, cut to `limit` characters."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def image_size(path: Path, *, where: str = "", verify: bool = False) -> tuple[int, int]:
    """(width, height) of an image file, reading only its header unless `verify`.

    `verify` decodes the whole image (PIL's own ``verify()`` checks PNG only), catching
    truncated or corrupt files at load instead of at `ImageSet.read_image`.
    Raises InputError naming the file when it is missing or not an image; `where` says
    where it was listed (e.g. "listed in trainval.txt line 3"); InputTooLarge for an image of
    more pixels than the limit (checked from the header, before any decoding).
    """
    from PIL import Image, UnidentifiedImageError

    ctx = f" ({where})" if where else ""
    if not path.is_file():
        raise InputError(path, f"image file not found{ctx}")
    limit = _MAX_PIXELS.get()
    try:
        with Image.open(path) as im:
            size = im.size
            if size[0] * size[1] > limit:
                raise InputTooLarge(path, f"image of {size[0]}x{size[1]} pixels is larger than the limit of "
                                          f"{limit} pixels{ctx}")
            if verify:
                im.load()
    except Image.DecompressionBombError:
        raise InputTooLarge(path, f"image is larger than the limit of {limit} pixels{ctx}") from None
    except UnidentifiedImageError as e:
        raise InputError(path, f"not an image (PIL cannot identify the file){ctx}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(path, f"cannot decode image ({short(e) or type(e).__name__}){ctx}") from e
    return int(size[0]), int(size[1])


def check_box(file: Path, where: str, box: Sequence[float], width: int, height: int, image: Path) -> None:
    """Raise InputError(file, ...) unless `box` (x1, y1, x2, y2) is finite, non-empty and inside
    the ``width x height`` image (edges may touch the border)."""
    x1, y1, x2, y2 = box
    shown = "(" + ", ".join(f"{v:g}" for v in box) + ")"
    if not all(math.isfinite(v) for v in box):
        raise InputError(file, f"{where}: box {shown} has a non-finite coordinate")
    if x2 <= x1:
        raise InputError(file, f"{where}: box {shown} has x2 <= x1")
    if y2 <= y1:
        raise InputError(file, f"{where}: box {shown} has y2 <= y1")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise InputError(file, f"{where}: box {shown} lies outside the {width}x{height} image {image.name}")


def make_meta(source: Path, fmt: str, sizes: Sequence[tuple[int, int]],
              columns: dict[str, Iterable[Any]] | None = None) -> pd.DataFrame:
    """The standard meta table: source, index, format, width, height, then `columns`."""
    n = len(sizes)
    meta = pd.DataFrame({
        "source": [str(source)] * n,
        "index": range(n),
        "format": [fmt] * n,
        "width": [w for w, _ in sizes],
        "height": [h for _, h in sizes],
    })
    for name, values in (columns or {}).items():
        meta[name] = list(values)
    return meta
