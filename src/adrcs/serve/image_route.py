"""``POST /v1/inspect/images`` [inspector]: one uploaded inspection image (+ optional template) -> boxes or class,
with the trust answer (decision, unknown_score, set: `trust_answers`; a detector's decision is its class)."""
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
from adrcs.serve.trust_answers import trust_answers


def _class_probs(model: Any, img: np.ndarray, template: np.ndarray | None) -> tuple[np.ndarray, Any]:
    """An image classifier's probabilities (K,) and, when it has a trust layer and `predict_outputs`, the
    network's features (1, F) for the unknown score (else None)."""
    pipe = model.pipeline
    if model.trust is None or not hasattr(pipe, "predict_outputs"):
        return pipe.predict_arrays(img, template), None
    import torch

    from adrcs.engine.image_tensors import image_channels

    if getattr(pipe, "use_template", False) and template is None:
        raise InputError(None, "this model needs the template image too")
    x = image_channels(img, template, pipe.input_size, pipe.use_template)
    probs, feats = pipe.predict_outputs(torch.from_numpy(x[None]))
    return probs[0], feats


def _detect(model: Any, img: np.ndarray, template: np.ndarray | None) -> dict[str, Any]:
    """A detector's boxes; the top box's class and score are the prediction and its confidence. No class
    probabilities to build a set from: decision = the predicted class, set "", no unknown score."""
    with model.lock:
        det = model.pipeline.predict_arrays(img, template)
    boxes = [{"class": model.class_names[int(c)], "score": round(float(s), 4),
              "x1": round(float(b[0]), 1), "y1": round(float(b[1]), 1), "x2": round(float(b[2]), 1),
              "y2": round(float(b[3]), 1)} for b, c, s in zip(det["boxes"], det["labels"], det["scores"])]
    per_class: dict[str, float] = {}
    for b in boxes:
        per_class[b["class"]] = max(per_class.get(b["class"], 0.0), b["score"])
    if boxes:
        top = max(boxes, key=lambda b: b["score"])
        out = {"predicted": top["class"], "confidence": top["score"], "probabilities": per_class, "boxes": boxes}
    else:
        out = {"predicted": "no_defect", "confidence": 1.0, "probabilities": {}, "boxes": []}
    return {**out, "decision": out["predicted"], "unknown_score": None, "set": ""}


def _classify(model: Any, img: np.ndarray, template: np.ndarray | None) -> dict[str, Any]:
    """An image classifier's class, probabilities and trust answer (`trust_answers`: the model's trust layer when
    it has one, else decision = the class)."""
    with model.lock:
        p, feats = _class_probs(model, img, template)
    probs = {c: round(float(v), 6) for c, v in zip(model.class_names, p)}
    k = int(np.argmax(p))
    (decision, score, pred_set), = trust_answers(model.trust, model.class_names, False, np.asarray(p)[None], feats)
    return {"predicted": model.class_names[k], "confidence": float(p[k]), "probabilities": probs, "boxes": None,
            "decision": decision, "unknown_score": score, "set": pred_set}


def _predict(model: Any, kind: str, img: np.ndarray, template: np.ndarray | None) -> dict[str, Any]:
    """The inspection of one image by a model of `kind`."""
    return _detect(model, img, template) if kind == "detect" else _classify(model, img, template)


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
                            boxes=out["boxes"], request_id=current_request_id() or uuid.uuid4().hex,
                            decision=out["decision"], unknown_score=out["unknown_score"], pred_set=out["set"])
        (saved,) = await writer.submit([rec])
        metrics.count_predictions([saved.predicted])
        return {"id": saved.id, "kind": kind, "class": saved.predicted, "confidence": saved.confidence,
                "decision": saved.decision, "unknown_score": saved.unknown_score, "set": saved.pred_set,
                "probabilities": out["probabilities"], "boxes": out["boxes"], "model_version": model.version,
                "width": int(img.shape[1]), "height": int(img.shape[0])}
