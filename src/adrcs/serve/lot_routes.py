"""Lots: ``GET /v1/lots/{lot}`` (the lot's wafer-map inspections and a summary) and
``GET /v1/lots/{lot}/stacked.png`` (its stacked failure-rate map) [inspector].

Lot and wafer ids are stored normalised (`wafer_id`: `adrcs.data.fab.normalize_wafer_id`, the same ids fab files
and the CLI's predictions CSV give: quotes and spaces trimmed, leading zeros of a number dropped), on every path
(JSON bodies, form fields, files), and a lot in the URL is matched after the same normalisation: ``/v1/lots/007``
finds the wafers of lot ``7``.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from adrcs.data.fab.wafer_grid import normalize_wafer_id
from adrcs.errors import InputError
from adrcs.serve.heavy_parse import MAX_TEXT
from adrcs.serve.security import INSPECTOR, Caller, require

MAX_LOT_WAFERS = 5000            # most inspections listed per call (page with offset)
STACK_MAX_MAPS = 500             # most stored maps stacked into one picture (the newest ones)
STACK_MAX_BYTES = 64 * 1024 * 1024


@lru_cache(maxsize=16384)
def wafer_id(value: str | None) -> str | None:
    """A lot or wafer id as stored: normalised, None when empty."""
    if value is None:
        return None
    return normalize_wafer_id(value) or None


def lot_param(lot: str) -> str:
    """The lot of a URL, checked (1..200 printable characters) and normalised; 422 otherwise."""
    if not lot or len(lot) > MAX_TEXT or not lot.isprintable():
        raise InputError(None, f"lot must be 1..{MAX_TEXT} printable characters")
    key = wafer_id(lot)
    if key is None:
        raise InputError(None, "lot is empty once quotes and spaces are trimmed")
    return key


class LotWafer(BaseModel):
    """One wafer-map inspection of the lot."""

    model_config = ConfigDict(populate_by_name=True)
    id: int = Field(description="inspection id (GET /v1/inspections/{id}, its picture: /image.png)")
    wafer: str | None = Field(description="wafer id (normalised), None when the input had none")
    predicted: str = Field(description="the model's class (a multi-label model: a JSON list of labels)")
    label: str = Field(description="the latest review's label, else the prediction")
    confidence: float
    created_at: datetime
    reviewed: bool
    model_version: str
    tool: str | None = None
    die_count: int | None = Field(None, description="dies on the wafer")
    fail_count: int | None = Field(None, description="failing dies")
    yield_: float | None = Field(None, alias="yield", description="passing share of the tested dies")
    decision: str | None = Field(None, description="the trust layer's decision: the class, review or unknown "
                                 "(None: stored before the trust layer)")
    unknown_score: float | None = Field(None, description="unknown-pattern score (None: the model has none)")
    set_: str | None = Field(None, alias="set", description="the prediction set")


class LotSummary(BaseModel):
    """Numbers over all the lot's wafer-map inspections (not only the listed page)."""

    wafers: int = Field(description="wafer-map inspections of the lot")
    distinct_wafers: int = Field(description="distinct wafer ids among them")
    yield_mean: float | None = Field(description="mean wafer yield, None when no inspection stored one")
    pattern_counts: dict[str, int] = Field(description="predicted class -> inspections")
    flagged: int = Field(description="inspections with confidence at most low_confidence (the review queue's)")
    reviewed: int = Field(description="inspections with at least one review")
    low_confidence: float


class LotOut(BaseModel):
    """A lot: its wafer-map inspections (oldest first, paged) and their summary."""

    lot: str = Field(description="the lot id as stored (normalised)")
    total: int
    limit: int
    offset: int
    wafers: list[LotWafer]
    summary: LotSummary


def _wafer(r: Any) -> dict[str, Any]:
    return {"id": r.id, "wafer": r.wafer, "predicted": r.predicted, "label": r.label, "confidence": r.confidence,
            "created_at": r.created_at, "reviewed": bool(r.reviews), "model_version": r.model_version, "tool": r.tool,
            "die_count": r.die_count, "fail_count": r.fail_count, "yield": r.wafer_yield, "decision": r.decision,
            "unknown_score": r.unknown_score, "set": r.pred_set}


def stacked_png(blobs: list[bytes]) -> tuple[bytes, int] | None:
    """(PNG of the failure rate per die position over the stored maps `blobs`, maps used); None when none decodes."""
    from adrcs.data.map_blob import decode_map
    from adrcs.report.wafer_render import png_bytes, rate_rgb, stacked_rate

    maps = []
    for b in blobs:
        try:
            m = decode_map(b)
        except (ValueError, OSError, EOFError):  # not a stored die-code map (an old or foreign blob)
            continue
        if m.ndim == 2 and m.size and m.dtype == np.uint8:
            maps.append(m)
    if not maps:
        return None
    return png_bytes(rate_rgb(stacked_rate(maps))), len(maps)


def add_lot_routes(app: FastAPI, store: Any, config: Any) -> None:
    """``GET /v1/lots/{lot}`` and ``GET /v1/lots/{lot}/stacked.png`` [inspector]. A lot id may hold ``/`` (sent as
    ``%2F``); the picture's route is matched first."""

    @app.get("/v1/lots/{lot:path}/stacked.png", tags=["lots"], response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the stacked failure-rate map"}})
    def lot_stacked_png(lot: str, caller: Caller = Depends(require(INSPECTOR))) -> Response:
        """The lot's stacked wafer map: each die position's failure rate over the lot's stored maps (the newest
        500 distinct ones), white (never fails) to dark red (always fails). ``X-Wafer-Maps``: maps stacked,
        ``X-Wafer-Maps-Total``: distinct maps of the lot."""
        key = lot_param(lot)
        blobs, total = store.lot_maps(key, STACK_MAX_MAPS, STACK_MAX_BYTES)
        out = stacked_png(blobs)
        if out is None:
            raise HTTPException(404, f"no stored wafer maps of lot {key[:60]!r}")
        png, used = out
        return Response(png, media_type="image/png", headers={"X-Wafer-Maps": str(used),
                                                               "X-Wafer-Maps-Total": str(total)})

    @app.get("/v1/lots/{lot:path}", tags=["lots"], response_model=LotOut, response_model_by_alias=True)
    def get_lot(lot: str, limit: int = Query(1000, ge=1, le=MAX_LOT_WAFERS), offset: int = Query(0, ge=0, le=2**62),
                caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """The lot's wafer-map inspections (oldest first) with a summary: inspections, distinct wafers, mean yield,
        predicted classes, low-confidence and reviewed counts. 404 for a lot with no wafer-map inspection."""
        key = lot_param(lot)
        summary = store.lot_summary(key, config.low_confidence)
        if summary["wafers"] == 0:
            raise HTTPException(404, f"no wafer-map inspections of lot {key[:60]!r}")
        items = store.list_inspections(lot=key, kind="wafer_map", limit=limit, offset=offset, newest_first=False)
        return {"lot": key, "total": summary["wafers"], "limit": limit, "offset": offset,
                "wafers": [_wafer(r) for r in items], "summary": {**summary, "low_confidence": config.low_confidence}}
