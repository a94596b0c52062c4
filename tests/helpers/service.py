"""A service under FastAPI's test client, and the checks every error answer of it must pass."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.runs import small_maps

ROLES = ("inspector", "engineer", "admin")
LEAKS = ("/tmp/", "/work/", "/home/", "/root/", "site-packages", "Error:", "Exception", "sqlite3.", "sqlalchemy",
         "pytest-of")


def auth(token: str) -> dict[str, str]:
    """Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


class Service:
    """A running test service: ``client``, ``tokens`` (role -> token), ``store``, ``app``."""

    def __init__(self, client: Any, tokens: dict[str, str], store: Any, app: Any) -> None:
        self.client, self.tokens, self.store, self.app = client, tokens, store, app

    def h(self, role: str = "inspector") -> dict[str, str]:
        """Authorization header of a role."""
        return auth(self.tokens[role])

    def inspect(self, n: int = 1, **extra: Any) -> dict:
        """Inspect `n` small maps (200 expected)."""
        r = self.client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(n), **extra}, headers=self.h())
        assert r.status_code == 200, r.text
        return r.json()


def assert_clean_error(r: Any, status: int | tuple[int, ...]) -> dict:
    """The answer has the status, a one-line detail and a request id, and leaks no path, class name or trace."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    detail = body["detail"] if isinstance(body["detail"], str) else str(body["detail"])
    assert "\n" not in detail and "Traceback" not in r.text
    for leak in LEAKS:
        assert leak not in r.text, (leak, r.text)
    assert body.get("request_id") and r.headers.get("x-request-id") == body["request_id"]
    return body


def role_auth(tokens: dict[str, str], role: str) -> dict[str, str]:
    """Authorization header of the token of `role` in `tokens`."""
    return auth(tokens[role])


@contextmanager
def wafer_service(run: Path, db_path: Path, **config: Any) -> Iterator[tuple[Any, dict[str, str], Any]]:
    """A service on `run` with a SQLite store at `db_path` and one token per role: (client, tokens, store)."""
    from fastapi.testclient import TestClient

    from adrcs.serve.app import ServiceConfig, create_app
    from adrcs.serve.store import Store

    store = Store(f"sqlite:///{db_path}")
    tokens = {role: store.create_token(role + "-user", role) for role in ROLES}
    app = create_app(ServiceConfig(db="unused", models=[str(run)], max_request_bytes=2_000_000, token_cache_s=0,
                                   **config), store=store)
    with TestClient(app) as client:
        yield client, tokens, store


def inspect_maps(client: Any, tokens: dict[str, str], n: int = 3, lot: str = "L1", **extra: Any) -> dict:
    """Inspect `n` small maps as the inspector (200 expected); the response body."""
    r = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(n), "lot": lot, **extra},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    return r.json()
