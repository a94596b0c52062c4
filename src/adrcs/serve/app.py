"""The inspection service: `create_app(ServiceConfig)` -> FastAPI app (OpenAPI docs at /docs).

Routes (all JSON; roles in brackets, see `adrcs.serve.security`):

- ``POST /v1/inspect/wafer-maps`` [inspector]: JSON ``{"maps": [[[0,1,2,...],...],...], "lot", "wafer"
  (one id or one per map), "tool", "part_type"}`` or a multipart upload ``file`` (an ``.npz``, a fab file: STDF,
  KLARF, SINF, E142 / G85, or a JSON file; plain or gzip / xz / bz2 / zstd compressed; pickles get 415; see
  `serve/uploads.py`) with form fields lot / wafer / tool / part_type (else the file's ids) -> per map (a fab file:
  per wafer): class (or labels), probabilities, confidence, decision, unknown_score, set (the trust layer's answer,
  `serve/trust_answers.py`), model version, record id, lot, wafer, die_count, fail_count, yield, part_type. Each
  map is answered by the champion of its product (part type: the file's, else the ``part_type`` field), else by
  the default champion (`serve/products.py`). Lot and wafer ids are stored normalised (`lot_routes.wafer_id`).
  Concurrent requests share forward passes (`MicroBatcher`). JSON requests are answered by `serve/fast_path.py`
  ahead of the FastAPI stack, with the same handler and responses.
- ``POST /v1/inspect/images`` [inspector]: multipart ``file`` (+ optional ``template``) -> boxes or class, with
  decision, unknown_score, set.
- ``GET /v1/inspections`` [inspector] (filters lot, cls, decision, since, until, reviewed, low_confidence,
  max_confidence, kind; limit / offset; ``queue=true``: the review queue, unknown first, then review, then by
  ascending confidence; ``order=queue|newest|suggest``, suggest: the queue ranked by label value,
  `queue_suggest.py`), ``GET /v1/inspections/{id}``, ``GET /v1/inspections/{id}/image.png``,
  ``GET /v1/inspections/{id}/explanation.png`` (a class activation map, `explain_route.py`).
- ``GET /v1/lots/{lot}`` [inspector]: the lot's wafer-map inspections and summary (yield, classes, flagged);
  ``GET /v1/lots/{lot}/stacked.png``: its stacked failure-rate map (`lot_routes.py`).
- ``POST /v1/inspections/{id}/review`` [engineer]: ``{"action": "confirm"|"correct", "label", "note"}``; the
  label is checked for both actions (`serve/classes.py`).
- ``GET /v1/classes`` [inspector], ``POST /v1/classes`` [admin]: classes reviews may use.
- ``GET /v1/stats`` [inspector]: class counts per lot or day and the drift status per model (statistic,
  threshold, class-mix changes, unknown rate: `drift_view.py`).
- ``GET /v1/models`` [inspector; paths for admins only]; ``POST /v1/models/{version}/promote`` (idempotent),
  ``POST /v1/models/rollback``, ``POST /v1/models/retrain`` (+ ``GET /v1/models/retrain/{job}``) [admin].
- ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /`` (the review page): no token.

Errors (`serve/errors.py`): 401/403 (token), 404 (unknown or out-of-range id or version, unknown lot), 413 (request
over `max_request_bytes`, an upload expanding past the limits; uploads: with a pointer to `adrcs predict` for big
lot files), 415 (a pickle upload), 422 (bad input, one clear
message), 409 (nothing to roll back to), 503 (no model deployed, the champion cannot be loaded, the database
is locked or read-only: with Retry-After); bodies ``{"detail", "request_id"}``, the id also in ``X-Request-ID``;
never a server path, class name or stack trace (those go to the log with the request id).

This module holds the inspect route (micro-batching, group commit); the others are routers over the same
store / host / config: `review_routes.py`, `lot_routes.py`, `classes.py`, `monitor_routes.py`, `model_routes.py`,
`image_route.py`, and `web.py` (page, /docs, headers).
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from adrcs.errors import InputError
from adrcs.inference.decisions import confidence, decide
from adrcs.serve.api_schemas import WAFER_MAPS_SCHEMA
from adrcs.serve.batcher import MicroBatcher
from adrcs.serve.classes import add_class_routes
from adrcs.monitoring.drift import DriftConfig
from adrcs.serve.errors import RequestIdMiddleware, answer_for, current_request_id, error_body, handled_exceptions
from adrcs.serve.explain_route import add_explanation_route
from adrcs.serve.fast_path import JsonRouteFastPath
from adrcs.serve import heavy_parse
from adrcs.serve.heavy_parse import HeavyParser, parse_json_maps, short_text, wafer_ids
from adrcs.serve.image_route import add_image_route
from adrcs.serve.inputs import encode_map, service_limits, upload_kind
from adrcs.serve.lot_routes import add_lot_routes, wafer_id
from adrcs.serve.middleware import BodyLimit, RequestMetrics
from adrcs.serve.model_host import KINDS, ModelHost
from adrcs.serve.model_store import ModelStore
from adrcs.serve.monitor_routes import add_monitor_routes
from adrcs.serve.model_routes import add_model_routes
from adrcs.serve.products import groups, part_key
from adrcs.serve.prometheus import ServiceMetrics
from adrcs.serve.review_routes import add_review_routes
from adrcs.serve.security import INSPECTOR, Caller, require
from adrcs.serve.shared_limits import sync_loop
from adrcs.serve.store import NewInspection, Store
from adrcs.serve.uploads import read_upload
from adrcs.serve.web import install_web

log = logging.getLogger("adrcs.serve")


@dataclass
class ServiceConfig:
    """Service settings (`adrcs serve` flags)."""

    db: str = "sqlite:///adrcs.db"
    models: list[str] = field(default_factory=list)   # run folders registered (and deployed if first of their kind)
    product_models: list[tuple[str, str]] = field(default_factory=list)  # (part type, run folder): its own champion
    device: str = "cpu"
    max_request_bytes: int = 64 * 1024 * 1024          # also sets the upload decompression cap (service_limits)
    max_maps_per_request: int = 10_000
    batch_max: int = 1024                               # maps per shared forward pass
    batch_wait_ms: float = 0.0                          # extra wait for others to join an idle forward pass; under
                                                        # load, requests arriving during a pass share the next one
    low_confidence: float = 0.7                         # below: shown in the review queue
    drift: DriftConfig = field(default_factory=DriftConfig)
    retrain: dict[str, Any] = field(default_factory=dict)  # options for `adrcs.adapt.adapt` (admin retrain)
    token_cache_s: float = 5.0                          # a checked token is trusted this long (revocation delay)
    fast_path: bool = True                              # JSON wafer-map inspections skip the FastAPI layers
    runtime: str = "torch"                              # wafer-map models: torch | onnx | onnx-int8 (model_host)
    # replicas (several `adrcs serve` processes on one PostgreSQL store; see `serve/replicas.py`)
    model_store: str | None = None                      # shared folder of registered run folders (model_store.py)
    trusted_proxies: list[str] = field(default_factory=list)  # X-Forwarded-For is honoured from these only
    rate_limit: int = 0                                 # requests per minute per token, all replicas (0: off)
    limits_sync_s: float = 1.0                          # how often rate-limit counts are shared (shared_limits.py)


class ServiceApp(FastAPI):
    """The FastAPI app, with the hot route answered on plain ASGI first (see `serve/fast_path.py`), behind
    uvicorn's `ProxyHeadersMiddleware` when proxies are trusted (client address from ``X-Forwarded-For``)."""

    fast_path: JsonRouteFastPath | None = None
    proxy_headers: Any = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.proxy_headers is not None and scope["type"] in ("http", "websocket"):
            return await self.proxy_headers(scope, receive, send)
        await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.fast_path is not None and self.fast_path.handles(scope):
            return await self.fast_path(scope, receive, send)
        await super().__call__(scope, receive, send)

    def trust_proxies(self, hosts: list[str]) -> None:
        """Take the client address from ``X-Forwarded-For`` on requests whose peer is one of `hosts` (addresses
        or networks); every other request keeps its peer address, whatever headers it sends."""
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.proxy_headers = ProxyHeadersMiddleware(self._dispatch, trusted_hosts=list(hosts)) if hosts else None


def _counts(m: np.ndarray) -> tuple[int, int, float | None]:
    """(die_count, fail_count, yield) of a die-code map (no untested dies known: every die counts as tested)."""
    dies = int(np.count_nonzero(m))
    fails = int(np.count_nonzero(m == 2))
    return dies, fails, (round((dies - fails) / dies, 6) if dies else None)


def create_app(config: ServiceConfig | None = None, store: Store | None = None) -> FastAPI:
    """The service app; `store` defaults to ``Store(config.db)``. Run folders in `config.models` are registered."""
    config = config or ServiceConfig()
    store = store or Store(config.db)
    host = ModelHost(store, device=config.device, runtime=config.runtime, model_store=ModelStore(config.model_store))
    for m in config.models:
        host.register(m)
    for part, m in config.product_models:  # the first one of a product becomes its champion (`products.py`)
        host.register(m, part_type=part)
    metrics = ServiceMetrics()
    limits = service_limits(config.max_request_bytes, config.max_maps_per_request)
    parser = HeavyParser()

    def _stack_for(model: Any, items: list[tuple]) -> np.ndarray:
        # items: (map, map prepared for its champion at request time, product)
        size = model.pipeline.input_size
        if all(it[1].shape == (size, size) for it in items):
            return np.stack([it[1] for it in items])
        return model.prepare([it[0] for it in items])  # the champion changed since the request prepared its maps

    def _answer(part: str | None, items: list[tuple]) -> list[tuple[Any, np.ndarray, tuple]]:
        model = host.current("wafer", part)
        probs, answers = model.answer_prepared(_stack_for(model, items))
        return [(model, p, a) for p, a in zip(probs, answers)]

    def predict_batch(items: list[tuple]) -> list[tuple[Any, np.ndarray, tuple]]:
        # few numpy/torch calls in this thread: each one may wait for the GIL while the event loop runs; the
        # trust answers (decision, unknown score, set) are computed for the whole batch at once, per product
        first = items[0][2]
        if all(it[2] == first for it in items):  # the usual case: one champion for the whole batch
            return _answer(first, items)
        out: list[Any] = [None] * len(items)
        for part, idx in groups([it[2] for it in items]).items():
            for i, o in zip(idx, _answer(part, [items[i] for i in idx])):
                out[i] = o
        return out

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
        limits_task = asyncio.create_task(sync_loop(app.state))  # rate-limit counts shared with other replicas
        yield
        limits_task.cancel()
        await batcher.stop()
        await writer.stop()
        parser.close()

    app = ServiceApp(title="ADRCS inspection service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                     description="Wafer-map and inspection-image defect classification with review and retraining.")
    app.state.store, app.state.host, app.state.config, app.state.metrics = store, host, config, metrics
    app.state.token_cache = {}
    app.state.limits, app.state.parser = limits, parser
    app.add_middleware(BodyLimit, limit=config.max_request_bytes)
    app.trust_proxies(config.trusted_proxies)

    # ------------------------------------------------------------ errors and request metrics

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return JSONResponse(json.loads(error_body("; ".join(parts) or "invalid request")), status_code=422)

    async def mapped_error(request: Request, exc: Exception) -> JSONResponse:  # no stack traces to clients
        status, detail, headers = answer_for(exc, f"{request.method} {request.url.path}")
        return JSONResponse(json.loads(error_body(detail)), status_code=status, headers=headers)

    for cls in handled_exceptions():  # anything else: RequestIdMiddleware answers it the same way (500)
        app.add_exception_handler(cls, mapped_error)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)

    # ------------------------------------------------------------ inspect

    def _model_or_503(kind: str, part: str | None = None):
        try:
            return host.current(kind, part)
        except LookupError as e:  # nothing deployed, or the champion cannot be loaded (ModelUnavailable)
            raise HTTPException(503, str(e)) from None

    def _result(rec: Any, model: Any, probs: dict[str, float]) -> dict[str, Any]:
        out = {"id": rec.id, "class": rec.predicted, "probabilities": probs, "confidence": rec.confidence,
               "decision": rec.decision, "unknown_score": rec.unknown_score, "set": rec.pred_set,
               "model_version": rec.model_version, "lot": rec.lot, "wafer": rec.wafer, "die_count": rec.die_count,
               "fail_count": rec.fail_count, "yield": rec.wafer_yield, "part_type": rec.part_type}
        if model.multilabel:
            out["labels"] = json.loads(rec.predicted)
        return out

    def _new_inspections(maps: list[np.ndarray], wafers: list[str | None], outputs: list[tuple[Any, np.ndarray, tuple]],
                         lots: list[str | None], tool: str | None, request_id: str, counts: list[tuple] | None,
                         parts: list[str | None]) -> tuple[list[NewInspection], list[dict[str, float]]]:
        news, prob_dicts = [], []
        for i, (m, w, lot, (model, p, (decision, score, pred_set))) in enumerate(zip(maps, wafers, lots, outputs)):
            lot, w = wafer_id(lot), wafer_id(w)  # stored normalised, as fab files give them (cached)
            dies, fails, wyield = counts[i] if counts is not None else _counts(m)
            names = model.class_names  # a champion swap mid-request: same classes unless retrained otherwise
            probs = {c: round(float(v), 6) for c, v in zip(names, p)}
            conf = float(confidence(p[None], model.multilabel)[0])  # as in the predictions CSV
            if model.multilabel:
                labels = sorted(c for c, h in zip(names, decide(p[None], True)[0]) if h)
                predicted = json.dumps(labels, separators=(",", ":"))
            else:
                predicted = names[int(decide(p[None], False)[0])]
            news.append(NewInspection(kind="wafer_map", model_version=model.version, predicted=predicted,
                                      probabilities=probs, confidence=conf, content=encode_map(m),
                                      media_type="application/x-npy", lot=lot, wafer=w, tool=tool,
                                      request_id=request_id, die_count=dies, fail_count=fails, wafer_yield=wyield,
                                      decision=decision, unknown_score=score, pred_set=pred_set,
                                      part_type=parts[i]))
            prob_dicts.append(probs)
        return news, prob_dicts

    def _prepare(model: Any, maps: list[np.ndarray], routes: list[str | None]) -> list[np.ndarray]:
        # each map resized for the champion of its product (`serve/products.py`); usually one for all
        if all(r is None for r in routes):
            return list(model.prepare(maps))
        out: list[Any] = [None] * len(maps)
        for part, idx in groups(routes).items():
            for i, p in zip(idx, _model_or_503("wafer", part).prepare([maps[i] for i in idx])):
                out[i] = p
        return out

    async def _classify(model: Any, maps: list[np.ndarray], wafers: list[str | None], lots: list[str | None],
                        tool: str | None, counts: list[tuple] | None = None,
                        parts: list[str | None] | None = None) -> bytes:
        # maps -> routed by part type -> shared forward pass -> stored (committed) -> JSON response body
        if len(maps) > config.max_maps_per_request:
            raise InputError(None, f"{len(maps)} maps in one request; the limit is {config.max_maps_per_request}")
        rid = current_request_id()
        parts = parts if parts is not None else [None] * len(maps)
        routes = [host.route("wafer", p) for p in parts] if any(p is not None for p in parts) else parts
        prepared = (_prepare(model, maps, routes) if len(maps) <= 16
                    else await run_in_threadpool(_prepare, model, maps, routes))
        outputs = await batcher.submit(list(zip(maps, prepared, routes)))
        args = (maps, wafers, outputs, lots, tool, rid, counts, parts)
        news, prob_dicts = (_new_inspections(*args) if len(maps) <= 16 else await run_in_threadpool(_new_inspections,
                                                                                                      *args))
        records = await writer.submit(news)
        metrics.count_predictions([r.predicted for r in records])
        return orjson.dumps({"request_id": records[0].request_id if records else rid,
                             "model_version": records[0].model_version if records else model.version,
                             "results": [_result(r, o[0], p) for r, o, p in zip(records, outputs, prob_dicts)]})

    async def _parse(raw: bytes) -> Any:
        # small bodies on the event loop, medium ones in a thread, large ones in the worker process (one at a time)
        args = (raw, limits.max_map_side, config.max_maps_per_request)
        if len(raw) < heavy_parse.SMALL_BODY:
            return parse_json_maps(*args)
        if len(raw) < heavy_parse.HEAVY_BODY:
            return await run_in_threadpool(parse_json_maps, *args)
        return await parser.run(parse_json_maps, *args)

    async def inspect_json_maps(raw: bytes) -> bytes:
        """The JSON form of POST /v1/inspect/wafer-maps: body bytes -> response bytes (also the fast path's)."""
        model = _model_or_503("wafer")
        maps, lot, tool, wafers, part = await _parse(raw)
        return await _classify(model, maps, wafers, [lot] * len(maps), tool, parts=[part] * len(maps))

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
        lot, tool = short_text(form.get("lot"), "lot"), short_text(form.get("tool"), "tool")
        form_wafer = short_text(form.get("wafer"), "wafer")
        form_part = part_key(form.get("part_type"), strict=True)  # the product; the file's own part types win
        if upload_kind(content) == "json":
            maps, body_lot, body_tool, wafers, part = await _parse(content)
            lot, tool = lot or body_lot, tool or body_tool
            if form_wafer is not None:
                wafers = wafer_ids(form_wafer, len(maps))
            return Response(await _classify(model, maps, wafers, [lot] * len(maps), tool,
                                            parts=[part or form_part] * len(maps)), media_type="application/json")
        # npz, fab files (STDF, KLARF, SINF, E142), compressed or not: read in the parse slot (big: worker process)
        up = await read_upload(parser, upload.filename, content, limits)
        n = len(up.maps)
        lots = [lot] * n if lot is not None else up.lots  # form fields win over the file's ids
        wafers = wafer_ids(form_wafer, n) if form_wafer is not None else up.wafers
        parts = [p or form_part for p in up.part_types] if up.part_types else [form_part] * n
        return Response(await _classify(model, up.maps, wafers, lots, tool or up.tool, up.counts(), parts),
                        media_type="application/json")

    if config.fast_path:
        app.fast_path = JsonRouteFastPath("/v1/inspect/wafer-maps", INSPECTOR, inspect_json_maps, app.state,
                                          config.max_request_bytes)
    add_image_route(app, store, writer, metrics, limits, _model_or_503)

    add_review_routes(app, store, host, config)
    add_explanation_route(app, store, host)
    add_lot_routes(app, store, config)
    add_class_routes(app, store, host)

    add_monitor_routes(app, store, host, metrics, config)
    add_model_routes(app, store, host, metrics, config)

    for k in KINDS:
        if (c := store.champion(k)) is not None:
            metrics.set_model(c.version, k)
    return install_web(app)  # the review page, offline /docs, page assets and the security headers
