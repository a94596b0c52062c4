"""Class activation maps drawn over what they explain: a wafer map (drawn by the project's renderer,
`report.wafer_render`) or an inspection image, with the CAM blended in as a heat overlay. The functions return
PNG bytes, so the CLI writes them, and the HTML report and the service can embed them as they are."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adrcs.report.wafer_render import map_rgb, png_bytes

HEAT_CMAP = "inferno"   # dark -> yellow, readable over the green / red die colours and over grey images
ALPHA = 0.65            # weight of the heat colour where the CAM is 1 (it fades to 0 with the CAM)


def heat_rgb(cam: np.ndarray, cmap: str = HEAT_CMAP) -> np.ndarray:
    """A CAM (H, W) in [0, 1] -> (H, W, 3) uint8 colours of `cmap`."""
    from matplotlib import colormaps

    c = np.clip(np.nan_to_num(np.asarray(cam, np.float32)), 0.0, 1.0)
    return (colormaps[cmap](c)[..., :3] * 255).astype(np.uint8)


def blend(rgb: np.ndarray, cam: np.ndarray, alpha: float = ALPHA, cmap: str = HEAT_CMAP) -> np.ndarray:
    """`rgb` (H, W, 3) uint8 with the heat colour of `cam` (same H, W) laid over it, weighted alpha * cam: where
    the CAM is 0 the picture shows unchanged."""
    if rgb.shape[:2] != cam.shape:
        raise ValueError(f"picture {rgb.shape[:2]} and CAM {cam.shape} differ in size")
    w = (float(alpha) * np.clip(np.nan_to_num(cam.astype(np.float32)), 0.0, 1.0))[..., None]
    return (rgb.astype(np.float32) * (1.0 - w) + heat_rgb(cam, cmap).astype(np.float32) * w + 0.5).astype(np.uint8)


def _on_grid(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A per-die CAM sampled onto a picture of `shape` pixels (each pixel takes the die under its centre)."""
    h, w = cam.shape
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.intp), w - 1)
    return cam[rows[:, None], cols[None, :]]


def wafer_cam_rgb(die_codes: np.ndarray, cam: np.ndarray, scale: int | None = None, max_px: int | None = None,
                  alpha: float = ALPHA) -> np.ndarray:
    """The wafer map as `map_rgb` draws it (each die a square, white off-wafer) with its per-die CAM over it."""
    m = np.asarray(die_codes)
    if np.asarray(cam).shape != m.shape:
        raise ValueError(f"map {m.shape} and CAM {np.asarray(cam).shape} differ in size")
    rgb = map_rgb(m, scale, max_px)
    return blend(rgb, _on_grid(np.asarray(cam, np.float32), rgb.shape[:2]), alpha)


def wafer_cam_png(die_codes: np.ndarray, cam: np.ndarray, scale: int | None = None, max_px: int | None = None,
                  alpha: float = ALPHA) -> bytes:
    """PNG bytes of `wafer_cam_rgb` (scale: pixels per die, default about 256 px across; max_px: thumbnails)."""
    return png_bytes(wafer_cam_rgb(die_codes, cam, scale, max_px, alpha))


def image_cam_rgb(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An inspection image (uint8 (H, W) grey or (H, W, 3)) as RGB with its CAM (H, W) blended over it."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    rgb = np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a
    return blend(rgb.astype(np.uint8), np.asarray(cam, np.float32), alpha)


def image_cam_png(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, detections: dict[str, Any] | None = None,
                  class_names: Sequence[str] = ()) -> bytes:
    """PNG bytes of `image_cam_rgb`; with `detections` (boxes, labels, scores of `DetectorPipeline.predict`)
    the boxes are drawn on top, as `adrcs predict` draws them."""
    rgb = image_cam_rgb(image, cam, alpha)
    if detections is None:
        return png_bytes(rgb)
    from adrcs.report.boxes import annotate

    im = annotate(rgb, detections["boxes"], detections["labels"], detections.get("scores"), class_names)
    return png_bytes(np.asarray(im))


def write_png(data: bytes, path: str | Path) -> Path:
    """Write PNG bytes to `path` (folders made); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p
