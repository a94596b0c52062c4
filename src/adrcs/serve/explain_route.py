"""``GET /v1/inspections/{id}/explanation.png`` [inspector]: where the model looks, over a stored inspection.

The stored input (a wafer map, or an image) is explained by the CURRENT champion of its kind (`inference.explain`:
LayerCAM for wafer-map and image classifiers, a class-agnostic EigenCAM for detectors) and drawn with
`report.cam_overlay` (the wafer map in die colours, or the image, with the CAM as a heat overlay; a detector's
boxes on top). 404 with a one-line reason when it cannot be done: no such inspection or no stored input, no
champion of the kind, a model whose inputs have no 2-D grid to map back onto (sinogram-feature wafer models), a
model that needs a template image (templates are not stored), or an installation without the explain modules.

Bounded: one explanation is computed at a time (an asyncio lock; the work runs in a worker thread, with a
private copy of the network, so inspections go on), and the last `CACHE_SIZE` PNGs are kept by (inspection id,
model version).
"""
from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adrcs.errors import InputError
from adrcs.serve.model_host import KINDS
from adrcs.serve.security import INSPECTOR, Caller, require

CACHE_SIZE = 128
log = logging.getLogger("adrcs.serve")


class NotExplainable(LookupError):
    """The inspection cannot be explained (the message says why; no path, no class name)."""


def _image(content: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(content)) as im:
        return np.asarray(im)


def explanation_png(model: Any, kind: str, content: bytes) -> bytes:
    """The overlay PNG of a stored input (`content`: the stored blob) explained by `model` (a `LoadedModel` of
    `kind`). NotExplainable when the model or the installation cannot explain it."""
    try:
        from adrcs.inference import explain
        from adrcs.report import cam_overlay
    except ImportError:  # pragma: no cover - an installation without grad-cam / the explain modules
        raise NotExplainable("explanations are not available on this server") from None
    pipe = getattr(model.pipeline, "base", model.pipeline)  # --runtime onnx: the checkpoint's PyTorch network
    try:
        if kind == "wafer":
            from adrcs.data.map_blob import decode_map

            m = decode_map(content)
            res = explain.map_explanations(pipe, [m])
            return cam_overlay.wafer_cam_png(m, res.cams[0])
        if getattr(pipe, "use_template", False):
            raise NotExplainable(f"the {kind} model compares with a template image, which is not stored")
        img = _image(content)
        if kind == "detect":
            res = explain.detector_explanations(pipe, [img])
            return cam_overlay.image_cam_png(img, res.cams[0], detections=res.detections[0],
                                             class_names=list(model.class_names))
        res = explain.image_explanations(pipe, [img])
        return cam_overlay.image_cam_png(img, res.cams[0])
    except InputError as e:  # e.g. a sinogram-feature model: no die grid to map back onto
        raise NotExplainable(f"the {kind} model cannot explain this input: {e.problem}") from None


class ExplanationCache:
    """The last `size` explanation PNGs by (inspection id, model version)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = int(size)
        self._items: OrderedDict[tuple[int, str], bytes] = OrderedDict()

    def get(self, key: tuple[int, str]) -> bytes | None:
        png = self._items.get(key)
        if png is not None:
            self._items.move_to_end(key)
        return png

    def put(self, key: tuple[int, str], png: bytes) -> None:
        self._items[key] = png
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _model_kind(store: Any, rec: Any) -> str:
    """The model kind that made an inspection: wafer for wafer maps; for images, the registered version's kind
    (else the version name's prefix)."""
    if rec.kind == "wafer_map":
        return "wafer"
    registered = store.get_model(rec.model_version)
    if registered is not None:
        return registered.kind
    prefix = rec.model_version.split("-", 1)[0]
    return prefix if prefix in KINDS else "image_classify"


def add_explanation_route(app: FastAPI, store: Any, host: Any) -> None:
    """Register the route (see the module docs)."""
    cache = ExplanationCache()
    busy = asyncio.Lock()  # one explanation at a time

    def _load(inspection_id: int) -> tuple[Any, str, bytes]:
        rec = store.get_inspection(inspection_id)
        if rec is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
        blob = store.get_blob(rec.input_sha256)
        if blob is None:
            raise HTTPException(404, f"inspection {inspection_id} has no stored input")
        return rec, _model_kind(store, rec), blob[0]

    @app.get("/v1/inspections/{inspection_id}/explanation.png", tags=["review"], response_class=Response)
    async def inspection_explanation(inspection_id: int, caller: Caller = Depends(require(INSPECTOR))) -> Response:
        """Where the current model of the inspection's kind looks: a class activation map over the stored wafer
        map or image (PNG). 404 when it cannot be explained (see the module docs)."""
        rec, kind, content = await run_in_threadpool(_load, inspection_id)
        try:
            model = host.current(kind)
        except LookupError:
            raise HTTPException(404, f"no {kind} model is deployed to explain inspection {inspection_id}") from None
        key = (inspection_id, model.version)
        png = cache.get(key)
        if png is None:
            async with busy:
                png = cache.get(key)  # computed while this request waited
                if png is None:
                    try:
                        png = await run_in_threadpool(explanation_png, model, kind, content)
                    except NotExplainable as e:
                        raise HTTPException(404, str(e)) from None
                    cache.put(key, png)
        return Response(png, media_type="image/png", headers={"X-Model-Version": model.version})
