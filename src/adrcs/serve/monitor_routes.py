"""Monitoring routes: class counts and drift (`/v1/stats`), health, Prometheus metrics."""
from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response

from adrcs.errors import InputError
from adrcs.serve.drift_view import DriftViews
from adrcs.serve.query_params import utc_param as _utc
from adrcs.serve.security import INSPECTOR, Caller, require
from adrcs.serve.startup import health_report


def add_monitor_routes(app: FastAPI, store: Any, host: Any, metrics: Any, config: Any) -> None:
    """``GET /v1/stats`` [inspector]; ``GET /health`` and ``GET /metrics`` (no token)."""

    views = DriftViews(store, host, config.drift)

    @app.get("/v1/stats", tags=["monitor"])
    def stats(by: str = "lot", since: str | None = None, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Predicted-class counts per lot (or day), the review queue's size, and the drift status: ``drift`` of the
        wafer-map model, ``drift_models`` of every deployed kind (statistic and threshold, the classes whose share
        moved most, the unknown rate; see `serve/drift_view.py`), and ``drift_products``: part type -> the drift of
        each product's own wafer-map champion against its own reference."""
        if by not in ("lot", "day"):
            raise InputError(None, "by must be 'lot' or 'day'")
        kinds = host.kinds()
        drift_models = views.reports(kinds)
        return {"by": by, "counts": store.class_counts(by=by, since=_utc(since, "since")),
                "total": store.count_inspections(), "unreviewed_low_confidence": store.count_inspections(
                    reviewed=False, max_confidence=config.low_confidence),
                "review_queue": store.count_inspections(reviewed=False, needs_review_below=config.low_confidence),
                "drift": drift_models["wafer"] if "wafer" in drift_models else views.report("wafer"),
                "drift_models": drift_models, "drift_products": views.product_reports("wafer")}


    @app.get("/health", tags=["monitor"])
    def health() -> JSONResponse:
        """"ok", or "degraded" (503) with the reasons: the database cannot be written, a champion cannot load."""
        body, status = health_report(store, host)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["monitor"], response_class=Response)
    def prometheus() -> Response:
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)
