"""Plain images without annotations: one image file, or every image directly in a folder.

For `predict` on new images: no boxes, no labels, no classes. Reference images are paired as
in `class_folders` (a stem ending in ``_temp``, ``_template`` or ``_ref`` is the template of the
image beside it: ``a_test.jpg`` -> ``a_temp.jpg``, ``a.png`` -> ``a_ref.png``) and are not
samples themselves. Given a single image file, its template beside it is paired when present.
Sub-folders are not searched. Not in `load_images`' auto-detection (`FORMATS`): callers that
accept unannotated images use it directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data.image_formats._common import IMAGE_EXTS, image_size, is_image_name, make_meta
from adrcs.data.image_formats.class_folders import _pair_templates
from adrcs.data.image_set import ImageSet, empty_boxes
from adrcs.errors import InputError

NAME = "plain"


def sniff(path: str | Path, **kw: Any) -> bool:
    """An image file, or a folder holding at least one image file directly."""
    p = Path(path)
    if p.is_file():
        return is_image_name(p)
    return p.is_dir() and any(f.is_file() and is_image_name(f) for f in p.iterdir())


def read(path: str | Path, *, verify: bool = False, skipped: list[dict[str, str]] | None = None,
         **kw: Any) -> ImageSet:
    """Every image of the folder (sorted by name), or the one image file, with templates paired. With a
    `skipped` list, images whose header cannot be read are left out and listed there instead of stopping."""
    p = Path(path)
    if p.is_file():
        if not is_image_name(p):
            raise InputError(p, f"not an image file (expected one of {', '.join(IMAGE_EXTS)})")
        siblings = sorted(f for f in p.parent.iterdir() if f.is_file() and is_image_name(f))
        _, pairs, _ = _pair_templates(siblings)
        samples, templates = [p], [pairs.get(p)]
        orphans = 0
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and is_image_name(f))
        samples, pairs, orphans = _pair_templates(files)
        templates = [pairs.get(s) for s in samples]
        if not samples:
            raise InputError(p, f"no images in the folder ({', '.join(IMAGE_EXTS)}; sub-folders are not searched)")
    else:
        raise InputError(p, "not found")
    sizes, kept = [], []
    for s, t in zip(samples, templates):
        try:
            size = image_size(s, verify=verify)
            if t is not None:
                image_size(t, where=f"template of {s.name}", verify=verify)
        except InputError as e:
            if skipped is None:
                raise
            skipped.append({"path": str(e.path or s), "problem": e.problem})
            continue
        sizes.append(size)
        kept.append((s, t))
    if not kept:
        raise InputError(p, "none of the images could be read")
    samples, templates = [s for s, _ in kept], [t for _, t in kept]
    n = len(samples)
    meta = make_meta(p, NAME, sizes)
    return ImageSet(paths=samples, templates=templates, boxes=[empty_boxes() for _ in range(n)],
                    box_labels=[np.zeros(0, np.int64) for _ in range(n)], labels=np.full(n, -1, np.int64),
                    class_names=[], meta=meta, notes={"format": NAME, "source": str(p), "orphan_templates": orphans})
