"""Security headers on every response (page, docs, API, errors, assets, fast path), /docs on local assets
with a CSP hash for its one inline script, and a review page with no inline script or style and no HTML
built from server data."""
from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from adrcs.serve import fast_path
from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.headers import API_HEADERS, CSP, SECURITY_HEADERS
from adrcs.serve.offline_docs import swagger_assets_dir
from adrcs.serve.store import Store
from adrcs.serve.web import PAGE, PAGE_STATIC, install_web

FAST_PATH_HAS_HEADERS = hasattr(fast_path, "API_HEADERS") or "API_HEADERS" in open(fast_path.__file__).read()
REQUIRED = {"content-security-policy": CSP, "x-frame-options": "DENY", "referrer-policy": "no-referrer",
            "x-content-type-options": "nosniff"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('web') / 'adrcs.db'}")
    app = install_web(create_app(ServiceConfig(), store=store))
    install_web(app)  # a second call changes nothing
    c = TestClient(app)
    c.tokens = {"inspector": store.create_token("ian", "inspector")}
    yield c
    store.close()


def _check_security_headers(r, csp: str = CSP) -> None:
    for name, value in REQUIRED.items():
        assert r.headers.get(name) == (csp if name == "content-security-policy" else value), (r.url, name)
    assert len(r.headers.get_list("content-security-policy")) == 1


@pytest.mark.parametrize("path, status", [
    ("/", 200), ("/health", 200), ("/openapi.json", 200), ("/metrics", 200),
    ("/v1/models", 401), ("/v1/inspections/1", 401), ("/no/such/route", 404), ("/redoc", 404),
])
def test_headers_on_pages_api_and_errors(client, path, status):
    r = client.get(path)
    assert r.status_code == status
    _check_security_headers(r)
    assert r.headers["cache-control"] == "no-store"


def test_headers_on_authorised_api_json(client):
    r = client.get("/v1/models", headers={"Authorization": f"Bearer {client.tokens['inspector']}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    _check_security_headers(r)
    assert r.headers["cache-control"] == "no-store"


def test_headers_on_a_413(client):
    # the body-limit middleware answers by itself: the headers middleware still wraps it
    r = client.post("/v1/inspect/images", content=b"x" * 10, headers={"content-length": str(1 << 40)})
    assert r.status_code == 413
    _check_security_headers(r)


@pytest.mark.parametrize("name, ctype", [("review.js", "javascript"), ("review.css", "text/css"),
                                         ("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css"),
                                         ("favicon.png", "image/png")])
def test_static_assets_are_served_from_the_package(client, name, ctype):
    r = client.get(f"/static/{name}")
    assert r.status_code == 200 and ctype in r.headers["content-type"] and len(r.content) > 100
    _check_security_headers(r)
    assert r.headers["cache-control"] == "no-cache"  # revalidated: a new release's script is used at once


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                                  "/static/../../serve/app.py", "/static/index.html", "/static/"])
def test_static_serves_nothing_else(client, path):
    assert client.get(path).status_code == 404


def test_docs_page_uses_local_assets_and_hashes_its_inline_script(client):
    r = client.get("/docs")
    assert r.status_code == 200
    html = r.text
    assert not re.search(r"(src|href)=[\"']https?://", html), "a CDN or other external URL in /docs"
    assert '"/static/swagger-ui-bundle.js"' in html and '"/static/swagger-ui.css"' in html
    assert '"validatorUrl": null' in html  # no badge image from validator.swagger.io
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = r.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in csp
    _check_security_headers(r, csp=csp)
    assert csp.replace(f" 'sha256-{digest}'", "") == CSP  # nothing else is relaxed
    assert client.get("/openapi.json").json()["paths"]["/v1/inspect/wafer-maps"]


def test_swagger_assets_ship_with_an_installed_package():
    d = swagger_assets_dir()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert (d / name).stat().st_size > 1000
    head = (d / "swagger-ui-bundle.js").read_text(encoding="utf-8", errors="replace")
    assert re.search(r'"5\.\d+\.\d+"', head)  # swagger-ui 5.x


class _Inline(HTMLParser):
    """Collects what a strict CSP would block in a page: inline scripts/styles, handlers, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if "src" not in a:
                self._in = "script"
            else:
                self.scripts.append(a["src"])
        if tag == "style":
            self.problems.append("<style>")
        for k in a:
            if k == "style" or k.startswith("on"):
                self.problems.append(f"{tag} {k}=")
        if a.get("href", "").startswith("javascript:"):
            self.problems.append("javascript: link")

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.problems.append("inline <script>")

    def handle_endtag(self, tag):
        self._in = None


def test_review_page_has_nothing_inline(client):
    html = client.get("/").text
    p = _Inline()
    p.feed(html)
    assert p.problems == [] and p.scripts == ["static/review.js"]
    assert "static/review.css" in html


def test_review_page_says_where_tokens_come_from():
    html = PAGE.read_text(encoding="utf-8")
    assert "adrcs token create --name NAME --role engineer" in html and "--admin-token-file" in html


def test_review_script_builds_no_html_and_keeps_the_token_per_tab():
    js = (PAGE_STATIC / "review.js").read_text(encoding="utf-8")
    code = "\n".join(line.split("//")[0] for line in js.splitlines())  # comments may name what is avoided
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setTimeout(\"", "localStorage.setItem"):
        assert sink not in code, sink
    assert "sessionStorage.setItem" in code and "localStorage.removeItem" in code


def test_exported_header_lists():
    names = {k for k, _ in SECURITY_HEADERS}
    assert names == {k.encode() for k in REQUIRED}
    assert (b"cache-control", b"no-store") in API_HEADERS and set(SECURITY_HEADERS) <= set(API_HEADERS)
    assert all(isinstance(k, bytes) and isinstance(v, bytes) and k == k.lower() for k, v in API_HEADERS)


@pytest.mark.parametrize("token", [None, "bad"])
def test_headers_on_json_inspections_without_the_fast_path(tmp_path, token):
    store = Store(f"sqlite:///{tmp_path / 'adrcs.db'}")
    c = TestClient(install_web(create_app(ServiceConfig(fast_path=False), store=store)))
    r = c.post("/v1/inspect/wafer-maps", json={"maps": [[[1]]]},
               headers={"Authorization": f"Bearer {token}"} if token else {})
    assert r.status_code == 401
    _check_security_headers(r)
    assert r.headers["cache-control"] == "no-store"
    store.close()


@pytest.mark.xfail(not FAST_PATH_HAS_HEADERS, strict=True,
                   reason="serve/fast_path.py does not add headers.API_HEADERS to its answers yet")
@pytest.mark.parametrize("token", [None, "bad"])
def test_headers_on_the_fast_path(client, token):
    assert client.app.fast_path is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = client.post("/v1/inspect/wafer-maps", json={"maps": [[[1]]]}, headers=headers)
    assert r.status_code == 401
    _check_security_headers(r)
    assert r.headers["cache-control"] == "no-store"


def test_headers_on_an_unhandled_error(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'adrcs.db'}")
    app = create_app(ServiceConfig(), store=store)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    install_web(app)
    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500 and "secret" not in r.text
    _check_security_headers(r)
    store.close()
