"""Defect classes a review may use, and the routes that list and register them.

A review label (for ``confirm`` and ``correct`` alike) must be one of the model's classes (the
champion's, or those the inspection was scored on) or a class an admin registered for that model kind
with ``POST /v1/classes``; for an inspection by a multi-label model it is a list of such classes.
Anything else gets 422, so a typo can never become training data for `adapt`.

- ``GET /v1/classes`` [inspector] (``kind`` optional): ``{"classes": [{"name", "kind", "source"}]}``,
  source ``model`` or ``registered``.
- ``POST /v1/classes`` [admin] ``{"name", "kind"}``: 201 when registered, 200 when it already was.
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adrcs.errors import InputError
from adrcs.serve.model_host import IMAGE_KINDS, KINDS
from adrcs.serve.security import ADMIN, INSPECTOR, Caller, require
from adrcs.serve.store import encode_labels


class ClassIn(BaseModel):
    """A defect class to register."""

    name: str = Field(min_length=1, max_length=100, description="the class name, as reviews will use it")
    kind: str = Field("wafer", pattern="^(wafer|detect|image_classify)$", description="the model kind it belongs to")


def _model_classes(host: Any, kind: str) -> list[str]:
    try:
        return list(host.current(kind).class_names)
    except LookupError:  # nothing deployed, or the champion cannot be loaded
        return []


def allowed_labels(store: Any, host: Any, rec: Any) -> set[str]:
    """Class names a review of inspection `rec` may use."""
    kinds = ["wafer"] if rec.kind == "wafer_map" else list(IMAGE_KINDS)
    names = {c for c in rec.probabilities if not c.startswith("[")}
    for k in kinds:
        names.update(_model_classes(host, k))
        names.update(c.name for c in store.list_classes(k))
    if rec.kind != "wafer_map":
        names.add("no_defect")
    return names


def review_label(store: Any, host: Any, rec: Any, action: str, label: str | list[str] | None) -> str | None:
    """The label to store for a review of `rec` (None: the store takes the prediction), or InputError (422)."""
    multilabel = rec.predicted.startswith("[")
    if label is None or label == "":
        if action == "correct":
            raise InputError(None, "a correction needs the right class in 'label'")
        return None
    allowed = allowed_labels(store, host, rec)
    if isinstance(label, str) and label.startswith("["):
        try:
            label = json.loads(label)
        except ValueError:
            raise InputError(None, "label: not a class name nor a JSON list of class names") from None
        if not isinstance(label, list) or not all(isinstance(x, str) for x in label):
            raise InputError(None, "label: a list of labels must hold class names only")
    if isinstance(label, list):
        if not multilabel:
            raise InputError(None, "this inspection has one class: label must be one class name")
        unknown = sorted(set(label) - allowed)
        if unknown:
            raise InputError(None, f"unknown class {unknown[0][:100]!r}; known: {', '.join(sorted(allowed))}")
        return encode_labels(label)
    if multilabel:
        raise InputError(None, "this inspection is multi-label: label must be a list of class names")
    if label not in allowed:
        raise InputError(None, f"unknown class {label[:100]!r}; known: {', '.join(sorted(allowed))} "
                               "(an admin can register a new one: POST /v1/classes)")
    return label


def add_class_routes(app: FastAPI, store: Any, host: Any) -> None:
    """``GET`` and ``POST /v1/classes``."""

    @app.get("/v1/classes", tags=["review"])
    def list_classes(kind: str | None = Query(None, pattern="^(wafer|detect|image_classify)$"),
                     caller: Caller = Depends(require(INSPECTOR))) -> dict:
        """The classes reviews may use: each deployed model's classes and the registered ones."""
        out = []
        for k in [kind] if kind else list(KINDS):
            model = _model_classes(host, k)
            out += [{"name": c, "kind": k, "source": "model"} for c in model]
            out += [{"name": c.name, "kind": k, "source": "registered"} for c in store.list_classes(k)
                    if c.name not in model]
        return {"classes": out}

    @app.post("/v1/classes", tags=["review"], status_code=201)
    async def add_class(body: ClassIn, caller: Caller = Depends(require(ADMIN))) -> JSONResponse:
        """Register a defect class so reviews can record (and `adapt` learn) a new pattern."""
        try:
            cls, created = await run_in_threadpool(store.add_class, body.name, body.kind, actor=caller.name)
        except ValueError as e:
            raise InputError(None, str(e)) from None
        return JSONResponse({"class": cls.to_dict(), "created": created}, status_code=201 if created else 200)
