"""Monitoring routes: class counts and drift (`/v1/stats`), health, Prometheus metrics."""
from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response

from adrcs.errors import InputError
from adrcs.monitoring.drift import DriftMonitor
from adrcs.serve.query_params import utc_param as _utc
from adrcs.serve.security import INSPECTOR, Caller, require
from adrcs.serve.startup import health_report


def add_monitor_routes(app: FastAPI, store: Any, host: Any, metrics: Any, config: Any) -> None:
    """``GET /v1/stats`` [inspector]; ``GET /health`` and ``GET /metrics`` (no token)."""

    @app.get("/v1/stats", tags=["monitor"])
    def stats(by: str = "lot", since: str | None = None, caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Predicted-class counts per lot (or day) and the drift status of the wafer-map model."""
        if by not in ("lot", "day"):
            raise InputError(None, "by must be 'lot' or 'day'")
        return {"by": by, "counts": store.class_counts(by=by, since=_utc(since, "since")),
                "total": store.count_inspections(), "unreviewed_low_confidence": store.count_inspections(
                    reviewed=False, max_confidence=config.low_confidence), "drift": _drift()}

    monitors: dict[str, DriftMonitor] = {}

    def _drift() -> dict[str, Any]:
        try:
            model = host.current("wafer")
        except LookupError as e:
            return {"status": "no_model", "detail": str(e)}
        if model.reference is None:
            return {"status": "no_reference", "detail": "the model's run folder has no validation class mix"}
        recent = [(p, c, lot) for p, c, lot in store.recent_predictions(config.drift.window, kind="wafer_map")]
        monitor = monitors.get(model.version)
        if monitor is None:  # one monitor per loaded model: its Monte Carlo null distributions stay cached
            monitors.clear()
            monitor = monitors[model.version] = DriftMonitor(model.reference, config.drift)
        out = monitor.status(recent)
        out["model_version"] = model.version
        return out


    @app.get("/health", tags=["monitor"])
    def health() -> JSONResponse:
        """"ok", or "degraded" (503) with the reasons: the database cannot be written, a champion cannot load."""
        body, status = health_report(store, host)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["monitor"], response_class=Response)
    def prometheus() -> Response:
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)
