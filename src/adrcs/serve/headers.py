"""Security headers on every response of the service.

The pages (`/` and `/docs`) load scripts, styles and images from the service itself only: no inline
script or style (the one inline script of Swagger UI's page is allowed on `/docs` by its hash, see
`serve/offline_docs.py`), no framing, no referrer, no MIME sniffing. API answers are never cached.

``API_HEADERS`` is the list, as ASGI byte pairs, that the plain-ASGI fast path adds to its JSON answers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
STATIC_PREFIX = "/static/"  # page assets: may be cached (revalidated), everything else is no-store

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]
NO_STORE = (b"cache-control", b"no-store")
API_HEADERS: list[tuple[bytes, bytes]] = [*SECURITY_HEADERS, NO_STORE]
# page assets: revalidated each time (ETag / Last-Modified), so a new release's script is picked up at once
STATIC_HEADERS: list[tuple[bytes, bytes]] = [*SECURITY_HEADERS, (b"cache-control", b"no-cache")]


def csp_with_script_hashes(hashes: list[str]) -> str:
    """`CSP` whose ``script-src`` also allows the inline scripts with these ``sha256-...`` hashes."""
    extra = " ".join(f"'{h}'" for h in hashes)
    return CSP.replace("script-src 'self'", f"script-src 'self' {extra}") if extra else CSP


class SecurityHeaders:
    """ASGI middleware: adds `SECURITY_HEADERS` (``Cache-Control: no-store``; ``no-cache`` under ``/static/``) to
    every HTTP response, keeping any of these headers a route set itself (e.g. /docs' own CSP)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = STATIC_HEADERS if scope["path"].startswith(STATIC_PREFIX) else API_HEADERS

        async def send_with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers") or [])
                have = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in have)
                msg = {**msg, "headers": headers}
            await send(msg)

        await self.app(scope, receive, send_with_headers)
