"""The inspection service: `create_app(ServiceConfig)` -> FastAPI app (OpenAPI docs at /docs).

Routes (all JSON; roles in brackets, see `adrcs.serve.security`):

- ``POST /v1/inspect/wafer-maps`` [inspector]: JSON ``{"maps": [[[0,1,2,...],...],...], "lot", "wafer"
  (one id or one per map), "tool"}`` or a multipart upload ``file`` (any wafer-map file the loader reads)
  with form fields lot / wafer / tool -> per map: class (or labels), probabilities, confidence, model
  version, record id. Concurrent requests share forward passes (`MicroBatcher`). JSON requests are
  answered by `serve/fast_path.py` ahead of the FastAPI stack, with the same handler and responses.
- ``POST /v1/inspect/images`` [inspector]: multipart ``file`` (+ optional ``template``) -> boxes or class.
- ``GET /v1/inspections`` [inspector] (filters lot, class, since, until, reviewed, low_confidence,
  max_confidence, kind; limit / offset), ``GET /v1/inspections/{id}``, ``GET /v1/inspections/{id}/image.png``.
- ``POST /v1/inspections/{id}/review`` [engineer]: ``{"action": "confirm"|"correct", "label", "note"}``.
- ``GET /v1/stats`` [inspector]: class counts per lot or day and the drift status.
- ``GET /v1/models`` [inspector]; ``POST /v1/models/{version}/promote``, ``POST /v1/models/rollback``,
  ``POST /v1/models/retrain`` (+ ``GET /v1/models/retrain/{job}``) [admin].
- ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /`` (the review page): no token.

Errors: 401/403 (token), 404 (unknown id or version), 413 (request over `max_request_bytes`), 422 (bad
input, one clear message), 409 (nothing to roll back to), 503 (no model of that kind deployed); never
a stack trace (it goes to the server log).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from adrcs.errors import InputError
from adrcs.serve.batcher import MicroBatcher
from adrcs.serve.drift import DriftConfig, DriftMonitor
from adrcs.serve.fast_path import JsonRouteFastPath, too_large_detail
from adrcs.serve.inputs import (decode_map, encode_map, encode_png, image_from_upload, maps_from_json,
                                maps_from_upload)
from adrcs.serve.model_host import IMAGE_KINDS, ModelHost
from adrcs.serve.prometheus import ServiceMetrics
from adrcs.serve.security import ADMIN, ENGINEER, INSPECTOR, Caller, require
from adrcs.serve.store import NewInspection, NotFound, Store

log = logging.getLogger("adrcs.serve")
PAGE = Path(__file__).with_name("page") / "index.html"
SMALL_BODY = 64 * 1024  # JSON bodies below this are parsed on the event loop (a thread hop costs more)


@dataclass
class ServiceConfig:
    """Service settings (`adrcs serve` flags)."""

    db: str = "sqlite:///adrcs.db"
    models: list[str] = field(default_factory=list)   # run folders registered (and deployed if first of their kind)
    device: str = "cpu"
    max_request_bytes: int = 64 * 1024 * 1024
    max_maps_per_request: int = 10_000
    batch_max: int = 1024                               # maps per shared forward pass
    batch_wait_ms: float = 0.0                          # extra wait for others to join an idle forward pass; under
                                                        # load, requests arriving during a pass share the next one
    low_confidence: float = 0.7                         # below: shown in the review queue
    drift: DriftConfig = field(default_factory=DriftConfig)
    retrain: dict[str, Any] = field(default_factory=dict)  # options for `adrcs.adapt.adapt` (admin retrain)
    token_cache_s: float = 5.0                          # a checked token is trusted this long (revocation delay)
    fast_path: bool = True                              # JSON wafer-map inspections skip the FastAPI layers


class ServiceApp(FastAPI):
    """The FastAPI app, with the hot route answered on plain ASGI first (see `serve/fast_path.py`)."""

    fast_path: JsonRouteFastPath | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.fast_path is not None and self.fast_path.handles(scope):
            return await self.fast_path(scope, receive, send)
        await super().__call__(scope, receive, send)


class ReviewIn(BaseModel):
    """An engineer's verdict on one inspection."""

    action: str = Field(pattern="^(confirm|correct)$", description="confirm the prediction or correct it")
    label: str | None = Field(None, max_length=200, description="the right class (required to correct)")
    note: str | None = Field(None, max_length=2000)


WAFER_MAPS_SCHEMA = {
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["maps"],
            "properties": {
                "maps": {"type": "array", "description": "2-D grids of die codes 0/1/2 (or 0/128/255)",
                         "items": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}},
                "lot": {"type": "string"}, "tool": {"type": "string"},
                "wafer": {"description": "one wafer id, or one per map",
                          "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "a wafer-map file (.pkl, .pkl.xz, .npz)"},
                           "lot": {"type": "string"}, "wafer": {"type": "string"}, "tool": {"type": "string"}}}},
    },
    "required": True,
}
IMAGES_SCHEMA = {
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "template": {"type": "string", "format": "binary",
                                    "description": "the defect-free reference image, when the model uses one"},
                       "lot": {"type": "string"}, "wafer": {"type": "string"}, "tool": {"type": "string"},
                       "kind": {"type": "string", "enum": list(IMAGE_KINDS)}}}}},
    "required": True,
}


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes (by Content-Length, or counted while streaming)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _too_large(self.limit, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return msg

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(self.limit, send)


class RequestMetrics:
    """ASGI middleware: request count and latency per route template, method and status."""

    def __init__(self, app: Any, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def send_status(msg: dict) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            self.metrics.observe_request(getattr(route, "path", "unmatched"), scope.get("method", "?"), status,
                                         time.perf_counter() - t0)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Callable) -> None:
    body = json.dumps({"detail": too_large_detail(limit)}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _utc(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"{name}: not an ISO 8601 time ({value!r})")
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _wafer_ids(wafer: Any, n: int) -> list[str | None]:
    if wafer is None or isinstance(wafer, str):
        return [wafer] * n
    if isinstance(wafer, list) and len(wafer) == n and all(isinstance(w, (str, type(None))) for w in wafer):
        return list(wafer)
    raise InputError(None, f"wafer must be one id or a list of {n} ids (one per map)")


def _short_text(v: Any, name: str, limit: int = 200) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise InputError(None, f"{name} must be a string of at most {limit} characters")
    return v


def create_app(config: ServiceConfig | None = None, store: Store | None = None) -> FastAPI:
    """The service app; `store` defaults to ``Store(config.db)``. Run folders in `config.models` are registered."""
    config = config or ServiceConfig()
    store = store or Store(config.db)
    host = ModelHost(store, device=config.device)
    for m in config.models:
        host.register(m)
    metrics = ServiceMetrics()

    def _stack_for(model: Any, items: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        # items: (map, map prepared for the champion at request time)
        size = model.pipeline.input_size
        if all(p.shape == (size, size) for _, p in items):
            return np.stack([p for _, p in items])
        return model.prepare([m for m, _ in items])  # the champion changed since the request prepared its maps

    def predict_batch(items: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
        # few numpy/torch calls in this thread: each one may wait for the GIL while the event loop runs
        model = host.current("wafer")
        probs = model.predict_prepared(_stack_for(model, items))
        return [(model.version, p) for p in probs]

    batcher = MicroBatcher(predict_batch, max_batch=config.batch_max, max_wait_ms=config.batch_wait_ms,
                           on_batch=metrics.observe_batch)
    # group commit: inspections of concurrent requests are written in one transaction (one fsync);
    # each request is answered only after its records are committed. No waiting: records that arrive
    # while a commit is in flight already go together in the next one.
    writer = MicroBatcher(store.add_inspections, max_batch=8192, max_wait_ms=0.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        writer.start()
        yield
        await batcher.stop()
        await writer.stop()

    app = ServiceApp(title="ADRCS inspection service", version="1", lifespan=lifespan,
                     description="Wafer-map and inspection-image defect classification with review and retraining.")
    app.state.store, app.state.host, app.state.config, app.state.metrics = store, host, config, metrics
    app.state.jobs = {}
    app.state.token_cache = {}
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)

    # ------------------------------------------------------------ errors and request metrics

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:  # no stack traces to clients
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(RequestMetrics, metrics=metrics)

    # ------------------------------------------------------------ inspect

    def _model_or_503(kind: str):
        try:
            return host.current(kind)
        except LookupError as e:
            raise HTTPException(503, str(e))

    def _result(rec: Any, model: Any, probs: dict[str, float]) -> dict[str, Any]:
        out = {"id": rec.id, "class": rec.predicted, "probabilities": probs, "confidence": rec.confidence,
               "model_version": rec.model_version, "lot": rec.lot, "wafer": rec.wafer}
        if model.multilabel:
            out["labels"] = json.loads(rec.predicted)
        return out

    def _parse_json_maps(raw: bytes) -> tuple[list[np.ndarray], str | None, str | None, list[str | None]]:
        try:
            body = orjson.loads(raw)  # 4x faster than json on die-code grids
        except orjson.JSONDecodeError:
            raise InputError(None, "body is not valid JSON (send {\"maps\": [...]} or a multipart file)")
        if not isinstance(body, dict) or "maps" not in body:
            raise InputError(None, "body must be a JSON object with a 'maps' list")
        maps = maps_from_json(body["maps"])
        lot, tool = _short_text(body.get("lot"), "lot"), _short_text(body.get("tool"), "tool")
        return maps, lot, tool, _wafer_ids(body.get("wafer"), len(maps))

    def _new_inspections(maps: list[np.ndarray], wafers: list[str | None], outputs: list[tuple[str, np.ndarray]],
                         lot: str | None, tool: str | None) -> tuple[list[NewInspection], list[dict[str, float]]]:
        request_id = uuid.uuid4().hex
        news, prob_dicts = [], []
        model = host.current("wafer")
        for m, w, (version, p) in zip(maps, wafers, outputs):
            names = model.class_names  # a champion swap mid-request: same classes unless retrained otherwise
            probs = {c: round(float(v), 6) for c, v in zip(names, p)}
            if model.multilabel:
                labels = sorted(c for c, v in probs.items() if v >= 0.5)
                predicted, conf = json.dumps(labels, separators=(",", ":")), float(np.mean(np.maximum(p, 1 - p)))
            else:
                k = int(np.argmax(p))
                predicted, conf = names[k], float(p[k])
            news.append(NewInspection(kind="wafer_map", model_version=version, predicted=predicted,
                                      probabilities=probs, confidence=conf, content=encode_map(m),
                                      media_type="application/x-npy", lot=lot, wafer=w, tool=tool,
                                      request_id=request_id))
            prob_dicts.append(probs)
        return news, prob_dicts

    async def _classify(model: Any, maps: list[np.ndarray], wafers: list[str | None], lot: str | None,
                        tool: str | None) -> bytes:
        # maps -> shared forward pass -> stored (committed) -> JSON response body
        if len(maps) > config.max_maps_per_request:
            raise InputError(None, f"{len(maps)} maps in one request; the limit is {config.max_maps_per_request}")
        prepared = model.prepare(maps) if len(maps) <= 16 else await run_in_threadpool(model.prepare, maps)
        outputs = await batcher.submit(list(zip(maps, prepared)))
        news, prob_dicts = (_new_inspections(maps, wafers, outputs, lot, tool) if len(maps) <= 16
                            else await run_in_threadpool(_new_inspections, maps, wafers, outputs, lot, tool))
        records = await writer.submit(news)
        metrics.count_predictions([r.predicted for r in records])
        return orjson.dumps({"request_id": records[0].request_id if records else None,
                             "model_version": records[0].model_version if records else model.version,
                             "results": [_result(r, model, p) for r, p in zip(records, prob_dicts)]})

    async def inspect_json_maps(raw: bytes) -> bytes:
        """The JSON form of POST /v1/inspect/wafer-maps: body bytes -> response bytes (also the fast path's)."""
        model = _model_or_503("wafer")
        # large bodies are parsed off the event loop so other requests keep flowing
        maps, lot, tool, wafers = (_parse_json_maps(raw) if len(raw) < SMALL_BODY
                                   else await run_in_threadpool(_parse_json_maps, raw))
        return await _classify(model, maps, wafers, lot, tool)

    @app.post("/v1/inspect/wafer-maps", openapi_extra={"requestBody": WAFER_MAPS_SCHEMA}, tags=["inspect"])
    async def inspect_wafer_maps(request: Request, caller: Caller = Depends(require(INSPECTOR))) -> Response:
        """Classify wafer maps; every result is stored before the response is sent."""
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return Response(await inspect_json_maps(await request.body()), media_type="application/json")
        model = _model_or_503("wafer")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError(None, "multipart upload needs a 'file' part (a wafer-map file)")
        content = await upload.read()
        ds = await run_in_threadpool(maps_from_upload, upload.filename, content)
        maps = list(ds.maps)
        lot, tool = _short_text(form.get("lot"), "lot"), _short_text(form.get("tool"), "tool")
        wafers = _wafer_ids(_short_text(form.get("wafer"), "wafer"), len(maps))
        if "wafer" in ds.meta and form.get("wafer") is None:
            wafers = [None if w is None else str(w) for w in ds.meta["wafer"]]
        return Response(await _classify(model, maps, wafers, lot, tool), media_type="application/json")

    if config.fast_path:
        app.fast_path = JsonRouteFastPath("/v1/inspect/wafer-maps", INSPECTOR, inspect_json_maps, app.state,
                                          config.max_request_bytes)

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
        model = _model_or_503(kind)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError(None, "multipart upload needs a 'file' part (the image)")
        mode = getattr(model.pipeline, "image_mode", "L")
        img = image_from_upload(upload.filename, await upload.read(), mode)
        tmpl_part = form.get("template")
        template = None
        if tmpl_part is not None and not isinstance(tmpl_part, str):
            template = image_from_upload(tmpl_part.filename, await tmpl_part.read(), mode)
            if template.shape[:2] != img.shape[:2]:
                raise InputError(tmpl_part.filename, f"template is {template.shape[1]}x{template.shape[0]}, "
                                                     f"the image {img.shape[1]}x{img.shape[0]}")
        if getattr(model.pipeline, "use_template", False) and template is None:
            raise InputError(upload.filename, "this model compares with a template: add a 'template' part")

        def run() -> dict[str, Any]:
            with model.lock:
                if kind == "detect":
                    det = model.pipeline.predict_arrays(img, template)
                    boxes = [{"class": model.class_names[int(c)], "score": round(float(s), 4),
                              "x1": round(float(b[0]), 1), "y1": round(float(b[1]), 1), "x2": round(float(b[2]), 1),
                              "y2": round(float(b[3]), 1)} for b, c, s in zip(det["boxes"], det["labels"],
                                                                             det["scores"])]
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
                return {"predicted": model.class_names[k], "confidence": float(p[k]), "probabilities": probs,
                        "boxes": None}

        out = await run_in_threadpool(run)
        rec = NewInspection(kind="image", model_version=model.version, predicted=out["predicted"],
                            probabilities=out["probabilities"], confidence=out["confidence"], content=encode_png(img),
                            media_type="image/png", lot=_short_text(form.get("lot"), "lot"),
                            wafer=_short_text(form.get("wafer"), "wafer"), tool=_short_text(form.get("tool"), "tool"),
                            boxes=out["boxes"], request_id=uuid.uuid4().hex)
        (saved,) = await writer.submit([rec])
        metrics.count_predictions([saved.predicted])
        return {"id": saved.id, "kind": kind, "class": saved.predicted, "confidence": saved.confidence,
                "probabilities": out["probabilities"], "boxes": out["boxes"], "model_version": model.version,
                "width": int(img.shape[1]), "height": int(img.shape[0])}

    # ------------------------------------------------------------ inspections and reviews

    def _inspection_json(r: Any) -> dict[str, Any]:
        d = r.to_dict()
        d["class"] = d.pop("predicted")
        d["reviewed"] = bool(r.reviews)
        return d

    @app.get("/v1/inspections", tags=["review"])
    def list_inspections(lot: str | None = None, cls: str | None = None, since: str | None = None,
                         until: str | None = None, reviewed: bool | None = None, low_confidence: bool = False,
                         max_confidence: float | None = None, kind: str | None = None, limit: int = 100,
                         offset: int = 0, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Stored inspections, newest first. `cls` filters the predicted class; `low_confidence` keeps those
        under the service's threshold."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise InputError(None, "limit must be 1..1000 and offset >= 0")
        if kind is not None and kind not in ("wafer_map", "image"):
            raise InputError(None, "kind must be wafer_map or image")
        if low_confidence:
            max_confidence = min(max_confidence if max_confidence is not None else 1.0, config.low_confidence)
        filters = dict(lot=lot, predicted=cls, since=_utc(since, "since"), until=_utc(until, "until"),
                       reviewed=reviewed, max_confidence=max_confidence, kind=kind)
        items = store.list_inspections(**filters, limit=limit, offset=offset)
        return {"total": store.count_inspections(**filters), "limit": limit, "offset": offset,
                "items": [_inspection_json(r) for r in items]}

    def _get_or_404(inspection_id: int):
        rec = store.get_inspection(inspection_id)
        if rec is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
        return rec

    @app.get("/v1/inspections/{inspection_id}", tags=["review"])
    def get_inspection(inspection_id: int, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        return _inspection_json(_get_or_404(inspection_id))

    @app.get("/v1/inspections/{inspection_id}/image.png", tags=["review"], response_class=Response)
    def inspection_picture(inspection_id: int, caller: Caller = Depends(require(INSPECTOR))) -> Response:
        """The inspected input as a picture: the wafer map in die colours, or the image with its boxes."""
        from adrcs.serve.render import image_with_boxes_png, wafer_map_png

        rec = _get_or_404(inspection_id)
        blob = store.get_blob(rec.input_sha256)
        if blob is None:
            raise HTTPException(404, f"inspection {inspection_id} has no stored input")
        content, media = blob
        if rec.kind == "wafer_map":
            png = wafer_map_png(decode_map(content))
        else:
            png = image_with_boxes_png(content, rec.boxes, list(rec.probabilities))
        return Response(png, media_type="image/png")

    @app.post("/v1/inspections/{inspection_id}/review", tags=["review"])
    def review(inspection_id: int, body: ReviewIn, caller: Caller = Depends(require(ENGINEER))) -> dict:
        """Confirm or correct a result; reviews are appended, the latest one counts."""
        rec = _get_or_404(inspection_id)
        if body.action == "correct":
            if not body.label:
                raise InputError(None, "a correction needs the right class in 'label'")
            kind = "wafer" if rec.kind == "wafer_map" else None
            known = _known_classes(kind, rec)
            if known and body.label not in known and not body.label.startswith("["):
                raise InputError(None, f"unknown class {body.label!r}; known: {', '.join(known)}")
        try:
            r = store.add_review(inspection_id, action=body.action, label=body.label, reviewer=caller.name,
                                 note=body.note)
        except NotFound:
            raise HTTPException(404, f"no inspection {inspection_id}")
        except ValueError as e:
            raise InputError(None, str(e))
        return {"inspection": _inspection_json(_get_or_404(inspection_id)), "review": r.to_dict()}

    def _known_classes(kind: str | None, rec: Any) -> list[str]:
        names = list(rec.probabilities)
        if kind is not None:
            try:
                names = list(dict.fromkeys(names + host.current(kind).class_names))
            except LookupError:
                pass
        elif rec.kind == "image":
            for k in IMAGE_KINDS:
                try:
                    names = list(dict.fromkeys(names + host.current(k).class_names))
                except LookupError:
                    pass
            names.append("no_defect")
        return names

    # ------------------------------------------------------------ stats and drift

    @app.get("/v1/stats", tags=["monitor"])
    def stats(by: str = "lot", since: str | None = None, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Predicted-class counts per lot (or day) and the drift status of the wafer-map model."""
        if by not in ("lot", "day"):
            raise InputError(None, "by must be 'lot' or 'day'")
        return {"by": by, "counts": store.class_counts(by=by, since=_utc(since, "since")),
                "total": store.count_inspections(), "unreviewed_low_confidence": store.count_inspections(
                    reviewed=False, max_confidence=config.low_confidence), "drift": _drift()}

    def _drift() -> dict[str, Any]:
        try:
            model = host.current("wafer")
        except LookupError:
            return {"status": "no_model"}
        if model.reference is None:
            return {"status": "no_reference", "detail": "the model's run folder has no validation class mix"}
        recent = [(p, c, lot) for p, c, lot in store.recent_predictions(config.drift.window, kind="wafer_map")]
        out = DriftMonitor(model.reference, config.drift).status(recent)
        out["model_version"] = model.version
        return out

    # ------------------------------------------------------------ models

    @app.get("/v1/models", tags=["models"])
    def models(caller: Caller = Depends(require(INSPECTOR))) -> dict:
        return {"models": [m.to_dict() for m in store.list_models()],
                "champions": {k: (c.version if (c := store.champion(k)) else None)
                              for k in ("wafer", "detect", "image_classify")},
                "events": store.model_events()[-50:]}

    @app.post("/v1/models/{version}/promote", tags=["models"])
    def promote(version: str, caller: Caller = Depends(require(ADMIN))) -> dict:
        if version not in {m.version for m in store.list_models()}:
            raise HTTPException(404, f"no model version {version!r}")
        m = store.promote(version, actor=caller.name)
        host.invalidate(m.kind)
        host.current(m.kind)  # load now, not on the next request
        metrics.set_model(m.version, m.kind)
        return {"champion": m.to_dict()}

    @app.post("/v1/models/rollback", tags=["models"])
    def rollback(kind: str = "wafer", caller: Caller = Depends(require(ADMIN))) -> dict:
        try:
            m = store.rollback(actor=caller.name, kind=kind)
        except ValueError as e:
            raise HTTPException(409, str(e))
        host.invalidate(m.kind)
        host.current(m.kind)
        metrics.set_model(m.version, m.kind)
        return {"champion": m.to_dict()}

    @app.post("/v1/models/retrain", tags=["models"], status_code=202)
    def retrain(caller: Caller = Depends(require(ADMIN))) -> dict:
        """Start adaptive retraining (challenger vs champion on the audit set) in the background."""
        champ = store.champion("wafer")
        if champ is None:
            raise HTTPException(503, "no wafer model is deployed")
        job = uuid.uuid4().hex[:12]
        app.state.jobs[job] = {"job": job, "status": "running", "started": datetime.now(timezone.utc).isoformat()}

        def work() -> None:
            from adrcs.adapt import adapt

            try:
                out_dir = Path(config.retrain.get("out", "runs/adapt")) / job
                res = adapt(store, champ.path, out_dir, actor=caller.name, **{k: v for k, v in config.retrain.items()
                                                                              if k != "out"})
                app.state.jobs[job].update(status="done", result=res)
            except Exception as e:  # reported in the job, logged in full
                log.exception("retrain job %s failed", job)
                app.state.jobs[job].update(status="failed", error=str(e)[:500])

        threading.Thread(target=work, daemon=True, name=f"retrain-{job}").start()
        return app.state.jobs[job]

    @app.get("/v1/models/retrain/{job}", tags=["models"])
    def retrain_status(job: str, caller: Caller = Depends(require(ADMIN))) -> dict:
        if job not in app.state.jobs:
            raise HTTPException(404, f"no retrain job {job!r}")
        return app.state.jobs[job]

    # ------------------------------------------------------------ health, metrics, page

    @app.get("/health", tags=["monitor"])
    def health() -> dict:
        return {"status": "ok" if store.ping() else "degraded", "db": store.ping(),
                "models": {k: (c.version if (c := store.champion(k)) else None)
                           for k in ("wafer", "detect", "image_classify")}}

    @app.get("/metrics", tags=["monitor"], response_class=Response)
    def prometheus() -> Response:
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    for k in ("wafer", "detect", "image_classify"):
        if (c := store.champion(k)) is not None:
            metrics.set_model(c.version, k)
    return app
