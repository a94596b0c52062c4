"""Inspection-image data formats and `load_images`, which picks the format.

Each format module has ``NAME``, ``sniff(path, **kw) -> bool`` and ``read(path, **kw) -> ImageSet``.
Auto-detection asks them in `FORMATS` order:

1. ``deeppcb``: a list file whose first entry is ``image.<ext> annotation.txt``, or a folder
   holding ``trainval.txt`` / ``test.txt`` of that kind;
2. ``voc``: `annotations` given, a folder with ``Annotations/`` or ``*.xml`` files, or an
   ``ImageSets/Main/*.txt`` list file;
3. ``class_folders``: a folder whose sub-folders hold images.

Image files are checked at load by reading their headers (missing files, files that are not
images, sizes for the box checks); pixels are decoded only by `ImageSet.read_image`, which raises
InputError for a corrupt file. ``verify=True`` decodes every image at load instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from adrcs.data.image_formats import class_folders, deeppcb, voc
from adrcs.data.image_formats._common import IMAGE_EXTS, pixel_limit, short
from adrcs.data.image_set import ImageSet
from adrcs.data.limits import DEFAULT_LIMITS, InputLimits
from adrcs.errors import InputError

FORMATS = [deeppcb, voc, class_folders]
_BY_NAME = {m.NAME: m for m in FORMATS}

__all__ = ["FORMATS", "IMAGE_EXTS", "detect", "load_images"]


def detect(path: str | Path, **kw: Any):
    """The first format module whose `sniff` accepts `path`, or None."""
    for fmt in FORMATS:
        if fmt.sniff(path, **kw):
            return fmt
    return None


def load_images(path: str | Path, images: str | Path | None = None, annotations: str | Path | None = None,
                format: str = "auto", *, image_set: str | Path | None = None, verify: bool = False,
                limits: InputLimits | None = None) -> ImageSet:
    """Load an inspection-image dataset, auto-detecting its format (see the module docstring).

    images, annotations, image_set: Pascal VOC folders and image-set list (see `voc.read`).
    format: "auto", "deeppcb", "voc" or "class_folders".
    verify: decode every image at load (slower) instead of only reading headers.
    limits: `limits.max_image_pixels` caps each image's width x height (default `InputLimits()`).

    Raises InputError, one line naming the file and the problem, for a missing path, an unknown
    layout, a bad annotation line / box / XML, a missing or non-image image file, an empty dataset.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "not found")
    voc_options = {"images": images, "annotations": annotations, "image_set": image_set}
    given = [k for k, v in voc_options.items() if v is not None]
    key = format.strip().lower().replace("-", "_")
    if key == "auto":
        fmt = voc if given else detect(p)
        if fmt is None:
            raise InputError(p, _unknown_layout(p))
    elif key in _BY_NAME:
        fmt = _BY_NAME[key]
    else:
        raise InputError(p, f"unknown image format {format!r} (expected auto, {', '.join(_BY_NAME)})")
    if given and fmt is not voc:
        raise InputError(p, f"{', '.join(given)} apply to Pascal VOC data only, not {fmt.NAME}")
    kw = {k: v for k, v in voc_options.items() if v is not None}
    try:
        with pixel_limit((limits or DEFAULT_LIMITS).max_image_pixels):
            ds = fmt.read(p, verify=verify, **kw)
    except InputError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, IndexError) as e:
        raise InputError(p, f"cannot read as {fmt.NAME} data ({type(e).__name__}: {short(e, 160)})") from e
    if len(ds) == 0:
        raise InputError(p, f"empty dataset: no images found ({fmt.NAME} layout)")
    ds.notes.update({"format": fmt.NAME, "source": str(p)})
    return ds


def _unknown_layout(p: Path) -> str:
    if p.is_file():
        if not p.read_bytes()[:65536].strip():
            return "empty dataset: the file holds no entries"
        return ("unknown image-data layout: not a DeepPCB list file ('image.jpg annotation.txt' per line) "
                "or a Pascal VOC ImageSets/Main/*.txt list")
    if not any(p.iterdir()):
        return "empty dataset: the folder is empty"
    return ("unknown image-data layout: expected a DeepPCB list file (trainval.txt), a Pascal VOC folder "
            "(Annotations/*.xml + JPEGImages/) or a folder of class folders holding images "
            f"({', '.join(IMAGE_EXTS)})")
