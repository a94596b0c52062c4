"""The hot route on plain ASGI: ``POST /v1/inspect/wafer-maps`` with a JSON body.

A line tool sends one map per wafer, so this request is most of the traffic. Through FastAPI it
crosses about ten middleware and routing layers, a dependency solver and three wrapped ``send``
callables: under load that was a fifth of the event loop's time. :class:`JsonRouteFastPath` answers
it directly with the same pieces the FastAPI route uses (token check, body limit, handler, request
metrics) and the same responses, status codes and messages. Everything else, including multipart
uploads to the same path, goes through FastAPI, where the route is also documented (``/docs``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException

from adrcs.serve.errors import REQUEST_ID, answer_for, error_body, request_id_from
from adrcs.serve.headers import API_HEADERS  # what the app's SecurityHeaders middleware adds elsewhere
from adrcs.serve.security import authorize, token_from_headers

log = logging.getLogger("adrcs.serve")
Handler = Callable[[bytes], Awaitable[bytes]]


def too_large_detail(limit: int) -> str:
    """The 413 message (also the app's body-limit middleware's)."""
    return f"request body over the {limit} byte limit"


class _Disconnected(Exception):
    pass


class JsonRouteFastPath:
    """Serves ``POST path`` requests whose body is not multipart with ``handler(raw_body) -> JSON bytes``.

    ``state`` is the app state (``store``, ``config``, ``token_cache``, ``metrics``) for the token check
    and the request metrics, and the security headers (``headers.API_HEADERS``). Errors map as in the app (``serve/errors.py``: the same statuses, bodies with
    the request id, which is also echoed in ``X-Request-ID``); a body over ``limit`` bytes -> 413.
    """

    def __init__(self, path: str, role: str, handler: Handler, state: Any, limit: int) -> None:
        self.path, self.role, self.handler, self.state, self.limit = path, role, handler, state, int(limit)

    def handles(self, scope: dict) -> bool:
        """True for this route's JSON requests (multipart uploads go to FastAPI)."""
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return False
        for name, value in scope["headers"]:
            if name == b"content-type":
                return not value.lower().startswith(b"multipart/")
        return True

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        t0 = time.perf_counter()
        rid = request_id_from(scope["headers"])
        ctx = REQUEST_ID.set(rid)
        headers: list[tuple[bytes, bytes]] = []
        try:
            status, body = 200, await self._answer(scope, receive)
        except _Disconnected:
            return
        except Exception as e:  # noqa: BLE001 - mapped like the app's handlers; no stack traces to clients
            status, detail, extra = answer_for(e, f"POST {self.path}")
            body = error_body(detail, rid)
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        finally:
            REQUEST_ID.reset(ctx)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
                                (b"x-request-id", rid.encode("ascii")), *API_HEADERS, *headers]})
        await send({"type": "http.response.body", "body": body})
        self.state.metrics.observe_request(self.path, "POST", status, time.perf_counter() - t0)

    async def _answer(self, scope: dict, receive: Callable) -> bytes:
        auth = api_token = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"x-api-token":
                api_token = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise self._too_large()
        peer = scope.get("client")  # (host, port): failed token checks are rate limited per client host
        await authorize(self.state, token_from_headers(auth, api_token), self.role,
                        client=peer[0] if peer else None)
        return await self.handler(await self._body(receive))

    async def _body(self, receive: Callable) -> bytes:
        chunks, seen = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                raise self._too_large()
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, too_large_detail(self.limit))
