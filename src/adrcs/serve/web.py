"""What a browser gets from the service: the review page (`/`), its assets and Swagger UI's (`/static/`),
the API docs (`/docs`, no internet needed) and the security headers on every response.

`install_web(app)` adds all of it to the app made by `create_app` (best made with ``docs_url=None,
redoc_url=None``; routes already at `/`, `/docs`, `/redoc` are replaced).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from adrcs.serve.headers import STATIC_PREFIX, SecurityHeaders
from adrcs.serve.offline_docs import SWAGGER_FOLDER, SWAGGER_PACKAGE, add_docs_route

PAGE_DIR = Path(__file__).with_name("page")
PAGE = PAGE_DIR / "index.html"
PAGE_STATIC = PAGE_DIR / "static"   # review.js, review.css


def _drop_routes(app: FastAPI, paths: set[str | None]) -> None:
    """Remove the app's routes at `paths` (FastAPI's CDN-based docs, an older page route)."""
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in paths]


def install_web(app: FastAPI) -> FastAPI:
    """Add the review page at `/`, page and Swagger UI assets at `/static/`, offline `/docs`, and the security
    headers middleware to `app` (call before the app starts; a second call does nothing). Returns `app`."""
    if getattr(app.state, "web_installed", False):
        return app
    if app.middleware_stack is not None:
        raise RuntimeError("install_web must be called before the app starts")
    app.state.web_installed = True
    _drop_routes(app, {"/", app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None})
    app.docs_url = app.redoc_url = None
    html = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:  # async: a constant needs no worker thread
        return HTMLResponse(html)

    add_docs_route(app, "/docs", STATIC_PREFIX)
    # the page's own files first, then Swagger UI's (swagger-ui-bundle.js, swagger-ui.css, favicon.png)
    assets = StaticFiles(directory=PAGE_STATIC, packages=[(SWAGGER_PACKAGE, SWAGGER_FOLDER)])
    app.mount(STATIC_PREFIX.rstrip("/"), assets, name="static")
    # outermost, around Starlette's own error middleware too, so a 500 gets the headers as well
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build())  # type: ignore[method-assign]
    return app
