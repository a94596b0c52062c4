"""Model registry routes: list (paths for admins only), promote (idempotent; a model that cannot be loaded is
refused with 409 and the champion stays), roll back, retrain. A version registered for a product (part type)
is promoted and rolled back within that product (`serve/products.py`)."""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException

from adrcs.serve.model_host import KINDS, ModelUnavailable
from adrcs.serve.products import part_key
from adrcs.serve.security import ADMIN, INSPECTOR, Caller, require
from adrcs.serve.store import NotFound

log = logging.getLogger("adrcs.serve")
CHAMPION_KINDS = KINDS


def _public(model: dict[str, Any], admin: bool) -> dict[str, Any]:
    return model if admin else {k: v for k, v in model.items() if k != "path"}


def _public_event(event: dict[str, Any], admin: bool) -> dict[str, Any]:
    if admin or "path" not in event.get("detail", {}):
        return event
    return {**event, "detail": {k: v for k, v in event["detail"].items() if k != "path"}}


def add_model_routes(app: FastAPI, store: Any, host: Any, metrics: Any, config: Any) -> None:
    """``/v1/models`` and its admin actions."""

    def _deploy(m: Any) -> dict:
        host.invalidate(m.kind)
        host.current(m.kind, m.part_type)  # load now, not on the next request (ModelUnavailable -> 503)
        if m.part_type is None:
            metrics.set_model(m.version, m.kind)
        return {"champion": m.to_dict()}

    def _stage_or_409(m: Any, what: str) -> None:
        try:
            host.stage(m)  # loaded before the registry changes: a broken model is never made champion
        except ModelUnavailable as e:
            raise HTTPException(409, f"{e}; not {what}") from None

    @app.get("/v1/models", tags=["models"])
    def models(caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """Registered versions, champions (``products``: kind -> part type -> the champion of that product), the
        runtime (`runtime`: wafer-map models as configured; `runtimes`: what
        each loaded champion runs on) and the last 50 registry events (server paths for admins only)."""
        admin = caller.role == ADMIN
        return {"models": [_public(m.to_dict(), admin) for m in store.list_models()],
                "champions": {k: (c.version if (c := store.champion(k)) else None) for k in CHAMPION_KINDS},
                "products": {k: parts for k in CHAMPION_KINDS if (parts := store.champion_parts(k))},
                "runtime": host.runtime, "runtimes": host.runtimes(),
                "events": [_public_event(e, admin) for e in store.model_events()[-50:]]}

    @app.post("/v1/models/{version}/promote", tags=["models"])
    def promote(version: str, caller: Caller = Depends(require(ADMIN))) -> dict:
        """Make `version` the champion of its kind; promoting the champion again is a no-op (200)."""
        current = store.get_model(version) if len(version) <= 128 else None
        if current is None:
            raise HTTPException(404, f"no model version {version[:128]!r}")
        if current.status == "champion":
            return {**_deploy(current), "unchanged": True}
        _stage_or_409(current, "promoted")
        try:
            m = store.promote(version, actor=caller.name)
        except NotFound:
            raise HTTPException(404, f"no model version {version!r}") from None
        except ValueError:  # another admin promoted it a moment ago
            return {**_deploy(store.get_model(version)), "unchanged": True}
        return _deploy(m)

    @app.post("/v1/models/rollback", tags=["models"])
    def rollback(kind: str = "wafer", part_type: str | None = None, caller: Caller = Depends(require(ADMIN))) -> dict:
        """Re-promote the previous champion of `kind` (of product `part_type`; none: the default champion; 409 when
        there is none)."""
        if kind not in CHAMPION_KINDS:
            raise HTTPException(422, f"kind must be one of {list(CHAMPION_KINDS)}")
        try:
            m = store.rollback(actor=caller.name, kind=kind, part_type=part_key(part_type, strict=True))
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        return _deploy(m)  # a previous champion that no longer loads: 503, and /health says so

    @app.post("/v1/models/retrain", tags=["models"], status_code=202)
    def retrain(caller: Caller = Depends(require(ADMIN))) -> dict:
        """Start adaptive retraining (challenger vs champion on the audit set) in the background, on this replica;
        the job is recorded in the store, so any replica reports it. With a model store the challenger's run
        folder is written there (``runs/<job>``), so every replica can load it once promoted."""
        champ = store.champion("wafer")
        if champ is None:
            raise HTTPException(503, "no wafer model is deployed")
        job = uuid.uuid4().hex  # 128 random bits: no collision between replicas
        started = store.create_job(job, actor=caller.name, replica=f"{socket.gethostname()}:{os.getpid()}")
        paths = host.model_store

        def work() -> None:
            from adrcs.adapt import adapt

            try:
                out_dir = paths.run_dir(job) if paths else Path(config.retrain.get("out", "runs/adapt")) / job
                res = adapt(store, paths.resolve(champ.path), out_dir, actor=caller.name, model_store=paths,
                            **{k: v for k, v in config.retrain.items() if k != "out"})
                store.finish_job(job, status="done", result=res)
            except Exception as e:  # reported in the job, logged in full
                log.exception("retrain job %s failed", job)
                store.finish_job(job, status="failed", error=str(e)[:500])

        threading.Thread(target=work, daemon=True, name=f"retrain-{job[:12]}").start()
        return started

    @app.get("/v1/models/retrain/{job}", tags=["models"])
    def retrain_status(job: str, caller: Caller = Depends(require(ADMIN))) -> dict:
        """A retrain job's status and result (whichever replica runs it)."""
        found = store.get_job(job) if len(job) <= 64 else None
        if found is None:
            raise HTTPException(404, f"no retrain job {job[:64]!r}")
        return found
