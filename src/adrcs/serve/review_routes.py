"""Routes over stored inspections: list, one, its picture, and an engineer's review."""
from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response

from adrcs.data.map_blob import decode_map
from adrcs.errors import InputError
from adrcs.serve.api_schemas import ReviewIn
from adrcs.serve.classes import review_label
from adrcs.serve.lot_routes import wafer_id
from adrcs.serve.query_params import text_param as _text_param, utc_param as _utc
from adrcs.serve.queue_suggest import ORDERS, suggest_page
from adrcs.serve.security import ENGINEER, INSPECTOR, Caller, require
from adrcs.serve.store import NotFound
from adrcs.serve.store.store import MAX_OFFSET


def inspection_json(r: Any) -> dict[str, Any]:
    """An inspection as the API shows it (``class`` for the prediction, ``reviewed``, ``set`` for the prediction
    set; ``decision`` / ``unknown_score`` / ``set`` are null on inspections stored before the trust layer)."""
    d = r.to_dict()
    d["class"] = d.pop("predicted")
    d["reviewed"] = bool(r.reviews)
    d["yield"] = d.pop("wafer_yield", None)
    d["set"] = d.pop("pred_set", None)
    return d


def add_review_routes(app: FastAPI, store: Any, host: Any, config: Any) -> None:
    """``GET /v1/inspections`` (+ ``/{id}``, ``/{id}/image.png``) [inspector], ``POST /v1/inspections/{id}/review``
    [engineer]."""
    _inspection_json = inspection_json


    @app.get("/v1/inspections", tags=["review"])
    def list_inspections(lot: str | None = None, cls: str | None = None, since: str | None = None,
                         until: str | None = None, reviewed: bool | None = None, low_confidence: bool = False,
                         max_confidence: float | None = None, kind: str | None = None, decision: str | None = None,
                         queue: bool = False, order: str | None = None, limit: int = 100, offset: int = 0,
                         caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Stored inspections, newest first. `cls` filters the predicted class, `decision` the trust layer's
        decision (a class, ``review`` or ``unknown``); `low_confidence` keeps those under the service's threshold.
        `queue`: the review queue: unreviewed inspections whose decision is unknown or review or whose confidence
        is under the service's threshold, unknown first, then review, then by ascending confidence.
        `order`: ``queue`` (that order; the default with `queue`), ``newest`` (the default otherwise) or
        ``suggest``: the review queue (implied) ranked by how much each review would teach the next retraining
        (`serve/queue_suggest.py`: greedy k-center on the gradient embeddings ``p - y_hat`` of the stored
        probabilities, least sure first, then what is unlike the rows ranked above; no forward pass). Only the
        newest 2,000 (`SUGGEST_POOL`) pending rows matching the filters are ranked (``ranked`` in the answer);
        each item carries ``suggest_rank`` (1-based) and ``suggest_score``."""
        if order is not None and order not in ORDERS:
            raise InputError(None, f"order must be one of {', '.join(ORDERS)} (got {order[:32]!r})")
        order = order or ("queue" if queue else "newest")
        queue = queue or order == "suggest"  # the suggestions rank the pending queue
        if queue and reviewed:
            raise InputError(None, "the review queue holds unreviewed inspections: leave out reviewed=true")
        if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
            raise InputError(None, f"limit must be 1..1000 and offset 0..{MAX_OFFSET}")
        if kind is not None and kind not in ("wafer_map", "image"):
            raise InputError(None, "kind must be wafer_map or image")
        if max_confidence is not None and not np.isfinite(max_confidence):
            raise InputError(None, "max_confidence must be a finite number")
        if low_confidence:
            max_confidence = min(max_confidence if max_confidence is not None else 1.0, config.low_confidence)
        lot = _text_param(lot, "lot")
        lot = None if lot is None else wafer_id(lot) or lot  # ids are stored normalised
        filters = dict(lot=lot, predicted=_text_param(cls, "cls"), since=_utc(since, "since"),
                       until=_utc(until, "until"), reviewed=False if queue else reviewed,
                       max_confidence=max_confidence, kind=kind, decision=_text_param(decision, "decision"),
                       needs_review_below=config.low_confidence if queue else None)
        total = store.count_inspections(**filters)
        if order == "suggest":
            page, ranked = suggest_page(store, filters, limit, offset)
            return {"total": total, "limit": limit, "offset": offset, "ranked": ranked,
                    "items": [{**_inspection_json(r), "suggest_rank": k, "suggest_score": round(sc, 6)}
                              for r, k, sc in page]}
        items = store.list_inspections(**filters, limit=limit, offset=offset, queue_order=order == "queue")
        return {"total": total, "limit": limit, "offset": offset, "items": [_inspection_json(r) for r in items]}

    def _get_or_404(inspection_id: int):
        rec = store.get_inspection(inspection_id)  # None also for ids out of the backend's range
        if rec is None:
            raise HTTPException(404, f"no inspection {inspection_id}")
        return rec

    @app.get("/v1/inspections/{inspection_id}", tags=["review"])
    def get_inspection(inspection_id: int, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """One inspection with its reviews."""
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
        """Confirm or correct a result; reviews are appended, the latest one counts. The label (for both
        actions) must be a known or registered class."""
        rec = _get_or_404(inspection_id)
        label = review_label(store, host, rec, body.action, body.label)
        try:
            r = store.add_review(inspection_id, action=body.action, label=label, reviewer=caller.name,
                                 note=body.note)
        except NotFound:
            raise HTTPException(404, f"no inspection {inspection_id}") from None
        except ValueError as e:
            raise InputError(None, str(e)) from None
        return {"inspection": _inspection_json(_get_or_404(inspection_id)), "review": r.to_dict()}
