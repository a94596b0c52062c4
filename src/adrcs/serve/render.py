"""Pictures for the review page: a stored inspection's input as PNG bytes (wafer map, or image with its boxes)."""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from adrcs.report.wafer_render import DIE_RGB, MAX_RENDER_SIDE, map_png  # noqa: F401 - the one renderer


def wafer_map_png(die_codes: np.ndarray, scale: int | None = None) -> bytes:
    """Die codes 0/1/2 -> PNG, each die a `scale` px square (default: about 256 px across)."""
    return map_png(die_codes, scale)


def image_with_boxes_png(png: bytes, boxes: Sequence[dict[str, Any]] | None, class_names: Sequence[str]) -> bytes:
    """A stored image (PNG bytes) with its predicted boxes (``{class, score, x1, y1, x2, y2}``) drawn on it."""
    from PIL import Image

    from adrcs.report.boxes import annotate

    img = np.asarray(Image.open(io.BytesIO(png)))
    boxes = list(boxes or [])
    names = list(class_names) + sorted({b["class"] for b in boxes} - set(class_names))
    im = annotate(img, [[b["x1"], b["y1"], b["x2"], b["y2"]] for b in boxes],
                  [names.index(b["class"]) for b in boxes], [b.get("score", 1.0) for b in boxes], names)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
