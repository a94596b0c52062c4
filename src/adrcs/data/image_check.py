"""Finding the images of a set that cannot be decoded (truncated JPEGs, damaged PNGs, pixel bombs), so that
``--on-error skip`` can go on without them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError


def drop_unreadable(images: ImageSet, step: Callable[[str], None] | None = None,
                    templates: bool = True) -> tuple[ImageSet, list[dict[str, str]]]:
    """`images` without those whose image (or template, when `templates`) cannot be decoded, and the skipped
    ones as ``{"path", "problem"}``; `step(name)` after each image (progress)."""
    keep, skipped = [], []
    for i in range(len(images)):
        try:
            images.read_image(i)
            if templates and images.templates[i] is not None:
                images.read_template(i)
            keep.append(i)
        except InputError as e:
            skipped.append({"path": str(e.path or images.paths[i]), "problem": e.problem})
        if step is not None:
            step(Path(images.paths[i]).name)
    if not keep:
        raise InputError(None, f"none of the {len(images)} images could be read (first: {skipped[0]['path']}: "
                               f"{skipped[0]['problem']})")
    return (images if not skipped else images.subset(np.asarray(keep))), skipped
