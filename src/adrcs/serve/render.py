"""Pictures for the review page: a stored inspection's input as PNG bytes (wafer map, or image with its boxes)."""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

# off-wafer, good die, failing die (the report's die colours)
DIE_RGB = np.array([[255, 255, 255], [159, 197, 168], [192, 57, 43]], np.uint8)
MAX_RENDER_SIDE = 1024


def wafer_map_png(die_codes: np.ndarray, scale: int | None = None) -> bytes:
    """Die codes 0/1/2 -> PNG, each die a `scale` px square (default: about 256 px across)."""
    from PIL import Image

    m = np.asarray(die_codes)
    step = -(-max(m.shape) // MAX_RENDER_SIDE)  # a map stored before the side limit: drawn at most this large
    m = np.clip(m[::step, ::step], 0, 2).astype(np.intp)
    scale = scale or max(1, 256 // max(m.shape))
    rgb = DIE_RGB[m].repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


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
