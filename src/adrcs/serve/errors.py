"""How the service answers errors: one status per failure class, one JSON body shape, a request id in every answer.

``{"detail": "<one line>", "request_id": "<id>"}`` with the id also in the ``X-Request-ID`` header. The
detail never holds a server path, an exception class name or a stack trace: unexpected errors are
logged in full with the request id, and the client gets "internal error" and the id to quote.

=================================================  ======  ==========================================
exception                                           status  detail
=================================================  ======  ==========================================
``HTTPException``                                   its     its detail (and headers)
``UnsupportedMediaError`` (a pickle upload)         415     the loader's one line
``InputTooLarge`` (over a map / byte / pixel cap)   413     the loader's one line
``InputError``                                      422     the one line
``ModelUnavailable`` (champion cannot be loaded)    503     kind and version only
the database is locked / read-only / unreachable    503     the reason, ``Retry-After``
anything else                                       500     "internal error" (logged)
=================================================  ======  ==========================================

Used by the FastAPI exception handlers and by ``serve/fast_path.py``, so both paths answer alike.
"""
from __future__ import annotations

import contextvars
import logging
import os
import re
from typing import Any, Callable

import orjson
from starlette.exceptions import HTTPException  # FastAPI's is a subclass; routing raises this one

from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError
from adrcs.serve.model_host import ModelUnavailable
from adrcs.serve.store.store import unavailable_reason

log = logging.getLogger("adrcs.serve")
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("adrcs_request_id", default=None)
RETRY_AFTER_S = 5  # what a client is told to wait when the database is locked or unavailable
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is short and plain (letters, digits, ``._-``), else a new id."""
    for name, value in headers:
        if name == b"x-request-id" and _CLIENT_ID.match(value):
            return value.decode("ascii")
    return os.urandom(16).hex()  # what uuid4().hex gives, without building a UUID (hot path)


def current_request_id() -> str:
    """The id of the request being served (a new one outside a request)."""
    return REQUEST_ID.get() or os.urandom(16).hex()


def answer_for(exc: BaseException, where: str = "") -> tuple[int, str, dict[str, str]]:
    """``(status, detail, headers)`` for an exception raised while serving a request; logs what is not the
    client's fault."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    if isinstance(exc, UnsupportedMediaError):
        return 415, str(exc), {}
    if isinstance(exc, InputTooLarge):
        return 413, str(exc), {}
    if isinstance(exc, InputError):
        return 422, str(exc), {}
    if isinstance(exc, ModelUnavailable):
        return 503, str(exc), {}
    reason = unavailable_reason(exc)
    if reason is not None:
        log.error("request %s %s: %s (%s)", current_request_id(), where, reason, exc)
        return 503, f"{reason}; try again later", {"Retry-After": str(RETRY_AFTER_S)}
    log.error("request %s %s: unhandled error", current_request_id(), where, exc_info=exc)
    return 500, "internal error (quote the request id when reporting it)", {}


def handled_exceptions() -> tuple[type[BaseException], ...]:
    """Exception classes to register with FastAPI's exception handlers."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return (HTTPException, InputError, ModelUnavailable, DBAPIError, PoolTimeout, sqlite3.Error)


def error_body(detail: str, request_id: str | None = None) -> bytes:
    """The JSON error body."""
    return orjson.dumps({"detail": detail, "request_id": request_id or current_request_id()})


class RequestIdMiddleware:
    """ASGI middleware: a request id per request (``X-Request-ID`` in, or new), set in `REQUEST_ID` for the
    handlers and logs, and echoed in the response's ``X-Request-ID`` header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id_from(scope.get("headers") or [])
        token = REQUEST_ID.set(rid)

        async def send_with_id(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", []), (b"x-request-id", rid.encode("ascii"))]}
            await send(msg)

        started = False

        async def send_tracked(msg: dict) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send_with_id(msg)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - what no handler took: answered here, with this request's id
            if started:
                raise
            status, detail, headers = answer_for(exc, f"{scope.get('method')} {scope.get('path')}")
            body = error_body(detail, rid)
            await send_with_id({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                *[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]]})
            await send({"type": "http.response.body", "body": body})
        finally:
            REQUEST_ID.reset(token)
