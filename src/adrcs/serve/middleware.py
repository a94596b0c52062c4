"""ASGI middleware of the service: the request body limit (413) and request metrics per route."""
from __future__ import annotations

import time
from typing import Any, Callable

from adrcs.serve.errors import error_body
from adrcs.serve.fast_path import too_large_detail
from adrcs.serve.prometheus import ServiceMetrics


UPLOAD_PATH = "/v1/inspect/wafer-maps"  # file uploads over the limit get a pointer to `adrcs predict`


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes (by Content-Length, or counted while streaming)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        hint = ""
        if scope.get("path") == UPLOAD_PATH and headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            from adrcs.serve.uploads import BIG_LOT_HINT

            hint = "; " + BIG_LOT_HINT
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_large(self.limit, send, hint)
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
            await too_large(self.limit, send, hint)


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


async def too_large(limit: int, send: Callable, hint: str = "") -> None:
    """Send the 413 answer (`hint`: appended to the one-line detail)."""
    body = error_body(too_large_detail(limit) + hint)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
