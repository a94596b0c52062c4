"""``POST /v1/inspect/images`` [inspector]: one uploaded inspection image (+ optional template) -> boxes or class."""
from __future__ import annotations

import uuid
from typing import Any, Callable

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from adrcs.errors import InputError
from adrcs.serve.api_schemas import IMAGES_SCHEMA
from adrcs.serve.errors import current_request_id
from adrcs.serve.heavy_parse import short_text
from adrcs.serve.inputs import encode_png, image_from_upload
from adrcs.serve.model_host import IMAGE_KINDS
from adrcs.serve.security import INSPECTOR, Caller, require
from adrcs.serve.store import NewInspection


def _predict(model: Any, kind: str, img: np.ndarray, template: np.ndarray | None) -> dict[str, Any]:
    with model.lock:
        if kind == "detect":
            det = model.pipeline.predict_arrays(img, template)
            boxes = [{"class": model.class_names[int(c)], "score": round(float(s), 4),
                      "x1": round(float(b[0]), 1), "y1": round(float(b[1]), 1), "x2": round(float(b[2]), 1),
                      "y2": round(float(b[3]), 1)} for b, c, s in zip(det["boxes"], det["labels"], det["scores"])]
            per_class: dict[str, float] = {}
            for b in boxes:
                per_class[b["class"]] = max(per_class.get(b["class"], 0.0), b["score"])
            if boxes:
                top = max(boxes, key=lambda b: b["score"])
                return {"predicted": top["class"], "confidence": top["score"], "probabilities": per_class,
                        "boxes": boxes}
            return {"predicted": "no_defect", "confidence": 1.0, "probabilities": {}, "boxes": []}
        p = model.pipeline.predict_arrays(img, template)
        probs = {c: round(float(v), 6) for c, v in zip(model.class_names, p)}
        k = int(np.argmax(p))
        return {"predicted": model.class_names[k], "confidence": float(p[k]), "probabilities": probs, "boxes": None}


def add_image_route(app: FastAPI, store: Any, writer: Any, metrics: Any, limits: Any,
                    model_or_503: Callable[[str], Any]) -> None:
    """Register the route; `writer` is the group-commit batcher, `limits` the service's input limits."""

    @app.post("/v1/inspect/images", openapi_extra={"requestBody": IMAGES_SCHEMA}, tags=["inspect"])
    async def inspect_image(request: Request, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Detect defect boxes (or classify the whole image) in one uploaded inspection image."""
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise InputError(None, "send the image as a multipart upload with a 'file' part")
        form = await request.form()
        kind = form.get("kind") or next((k for k in IMAGE_KINDS if store.champion(k) is not None), "detect")
        if kind not in IMAGE_KINDS:
            raise InputError(None, f"kind must be one of {list(IMAGE_KINDS)}")
        model = model_or_503(kind)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError(None, "multipart upload needs a 'file' part (the image)")
        mode = getattr(model.pipeline, "image_mode", "L")
        pixels = int(limits.max_image_pixels)
        img = await run_in_threadpool(image_from_upload, upload.filename, await upload.read(), mode, pixels)
        tmpl_part = form.get("template")
        template = None
        if tmpl_part is not None and not isinstance(tmpl_part, str):
            template = await run_in_threadpool(image_from_upload, tmpl_part.filename, await tmpl_part.read(), mode,
                                               pixels)
            if template.shape[:2] != img.shape[:2]:
                raise InputError(tmpl_part.filename, f"template is {template.shape[1]}x{template.shape[0]}, "
                                                     f"the image {img.shape[1]}x{img.shape[0]}")
        if getattr(model.pipeline, "use_template", False) and template is None:
            raise InputError(upload.filename, "this model compares with a template: add a 'template' part")
        out = await run_in_threadpool(_predict, model, kind, img, template)
        rec = NewInspection(kind="image", model_version=model.version, predicted=out["predicted"],
                            probabilities=out["probabilities"], confidence=out["confidence"], content=encode_png(img),
                            media_type="image/png", lot=short_text(form.get("lot"), "lot"),
                            wafer=short_text(form.get("wafer"), "wafer"), tool=short_text(form.get("tool"), "tool"),
                            boxes=out["boxes"], request_id=current_request_id() or uuid.uuid4().hex)
        (saved,) = await writer.submit([rec])
        metrics.count_predictions([saved.predicted])
        return {"id": saved.id, "kind": kind, "class": saved.predicted, "confidence": saved.confidence,
                "probabilities": out["probabilities"], "boxes": out["boxes"], "model_version": model.version,
                "width": int(img.shape[1]), "height": int(img.shape[0])}
