"""`/docs` without internet: Swagger UI served from the package, not from a CDN.

Line networks in a fab often have no route to the internet, where FastAPI's default `/docs` page loads
Swagger UI from, so it stays blank. The Swagger UI files (swagger-ui-dist 5.x, Apache-2.0) come from the
``fastapi-offline`` package (MIT), served by the app under ``/static/``; the page itself is FastAPI's
``get_swagger_ui_html``. Its one inline start-up script is allowed by a CSP hash on this route only.
ReDoc (`/redoc`) is not offered: it injects inline styles that the CSP forbids, and `/docs` covers it.
"""
from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from adrcs.serve.headers import csp_with_script_hashes

SWAGGER_PACKAGE, SWAGGER_FOLDER = "fastapi_offline", "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon.png
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def swagger_assets_dir() -> Path:
    """The folder holding Swagger UI's files (``swagger-ui-bundle.js``, ``swagger-ui.css``, ``favicon.png``)."""
    return Path(str(files(SWAGGER_PACKAGE) / SWAGGER_FOLDER))


def script_hashes(html: str) -> list[str]:
    """CSP ``sha256-...`` sources of the inline ``<script>`` blocks of `html`."""
    return ["sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
            for s in _INLINE_SCRIPT.findall(html)]


def swagger_page(title: str, openapi_url: str, static_url: str) -> HTMLResponse:
    """Swagger UI's page on local assets, with a CSP that allows exactly its inline start-up script."""
    page = get_swagger_ui_html(openapi_url=openapi_url, title=title,
                               swagger_js_url=f"{static_url}swagger-ui-bundle.js",
                               swagger_css_url=f"{static_url}swagger-ui.css",
                               swagger_favicon_url=f"{static_url}favicon.png",
                               # no badge from validator.swagger.io: nothing leaves the line network
                               swagger_ui_parameters={"validatorUrl": None})
    html = page.body.decode()
    page.headers["Content-Security-Policy"] = csp_with_script_hashes(script_hashes(html))
    return page


def add_docs_route(app: FastAPI, path: str = "/docs", static_url: str = "/static/") -> None:
    """Add `path` (Swagger UI on the app's OpenAPI schema) to `app`; the assets must be served at `static_url`."""
    title = f"{app.title} - API docs"

    @app.get(path, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return swagger_page(title, f"{root}{app.openapi_url}", f"{root}{static_url}")
