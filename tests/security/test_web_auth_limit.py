"""Failed token checks are throttled per client: 429 with Retry-After past the limit, on the FastAPI routes
and on the plain-ASGI fast path; valid tokens of other clients are not slowed; memory stays bounded."""
from __future__ import annotations

import inspect

import pytest
from fastapi.testclient import TestClient

from adrcs.serve import fast_path
from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.auth_limit import FailedAuthLimiter, client_key
from adrcs.serve.store import Store
from adrcs.serve.web import install_web

# the fast path passes the client address to `authorize` once it is wired (see the B2 report)
FAST_PATH_HAS_CLIENT = "client=" in inspect.getsource(fast_path.JsonRouteFastPath)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------------------------- the limiter
def test_limiter_blocks_after_n_failures_and_refills():
    clock = Clock()
    lim = FailedAuthLimiter(max_failures=10, window_s=60, clock=clock)
    for _ in range(10):
        assert lim.retry_after("10.0.0.1") == 0
        lim.failed("10.0.0.1")
    assert lim.retry_after("10.0.0.1") == 6  # one more try every 60/10 s
    assert lim.retry_after("10.0.0.2") == 0  # others are not affected
    clock.t += 6
    assert lim.retry_after("10.0.0.1") == 0
    lim.failed("10.0.0.1")
    assert lim.retry_after("10.0.0.1") == 6
    clock.t += 3600
    assert lim.retry_after("10.0.0.1") == 0 and len(lim) == 0  # refilled buckets are dropped


def test_concurrent_failures_still_count():
    """Failures checked concurrently (all passed retry_after first) put the bucket in debt: a longer wait."""
    lim = FailedAuthLimiter(max_failures=10, window_s=60, clock=Clock())
    for _ in range(15):
        lim.failed("h")
    assert lim.retry_after("h") == 36  # 6 tokens short of one: 6 * 6 s
    for _ in range(100):
        lim.failed("h")
    assert lim.retry_after("h") == 66  # the debt is capped at one full bucket


def test_limiter_memory_is_bounded():
    lim = FailedAuthLimiter(max_failures=2, window_s=60, max_clients=100, clock=Clock())
    for i in range(5000):
        lim.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(lim) == 100
    lim.failed("10.0.0.0")
    lim.failed("10.0.0.0")
    assert lim.retry_after("10.0.0.0") > 0  # the most recent ones are kept


@pytest.mark.parametrize("host, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),     # same /64: the same client
    ("::ffff:192.0.2.7", "192.0.2.7"),                  # IPv4-mapped
    (None, "unknown"), ("", "unknown"), ("testclient", "testclient"),
])
def test_client_keys(host, key):
    assert client_key(host) == key


# ---------------------------------------------------------------------------------------------- the service
@pytest.fixture
def service(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'adrcs.db'}")
    tokens = {"inspector": store.create_token("ian", "inspector")}
    app = install_web(create_app(ServiceConfig(), store=store))
    yield app, tokens
    store.close()


def _client(app, host: str) -> TestClient:
    return TestClient(app, client=(host, 40000))


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_429_after_ten_bad_tokens_on_fastapi_routes(service):
    app, tokens = service
    bad, good = _client(app, "198.51.100.1"), _client(app, "198.51.100.2")
    codes = [bad.get("/v1/models", headers=_bearer(f"guess-{i}")).status_code for i in range(10)]
    assert codes == [401] * 10
    r = bad.get("/v1/inspections", headers={"X-API-Token": "guess-10"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "too many failed token checks" in r.json()["detail"]
    # blocked: even a right token is not looked at (a guess made now tells nothing)
    assert bad.get("/v1/models", headers=_bearer(tokens["inspector"])).status_code == 429
    # other clients are not slowed, with a valid token or a first wrong one
    assert good.get("/v1/models", headers=_bearer(tokens["inspector"])).status_code == 200
    assert good.get("/v1/models", headers=_bearer("typo")).status_code == 401


def test_successes_and_missing_tokens_do_not_count(service):
    app, tokens = service
    c = _client(app, "198.51.100.3")
    for _ in range(30):
        assert c.get("/v1/models", headers=_bearer(tokens["inspector"])).status_code == 200
        assert c.get("/v1/models").status_code == 401  # no token: nothing guessed
    assert c.get("/v1/models", headers=_bearer("x")).status_code == 401  # a first failure: still 401


def test_limit_comes_from_the_config(service):
    app, _ = service
    app.state.config.auth_max_failures, app.state.config.auth_window_s = 3, 30
    c = _client(app, "198.51.100.4")
    codes = [c.get("/v1/stats", headers=_bearer(f"g{i}")).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert c.get("/v1/stats", headers=_bearer("g")).headers["Retry-After"] == "10"


def test_zero_turns_throttling_off(service):
    app, _ = service
    app.state.config.auth_max_failures = 0
    c = _client(app, "198.51.100.5")
    assert {c.get("/v1/models", headers=_bearer(f"g{i}")).status_code for i in range(25)} == {401}


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "no-fast-path"])
def test_json_inspections_are_throttled_on_both_paths(tmp_path, fast):
    store = Store(f"sqlite:///{tmp_path / 'adrcs.db'}")
    app = install_web(create_app(ServiceConfig(fast_path=fast), store=store))
    assert (app.fast_path is not None) == fast
    c = _client(app, "198.51.100.6")
    body = {"maps": [[[1, 1], [1, 2]]]}
    codes = [c.post("/v1/inspect/wafer-maps", json=body, headers=_bearer(f"g{i}")).status_code for i in range(11)]
    assert codes == [401] * 10 + [429]
    r = c.post("/v1/inspect/wafer-maps", json=body, headers=_bearer("g"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    store.close()


@pytest.mark.xfail(not FAST_PATH_HAS_CLIENT, strict=True,
                   reason="serve/fast_path.py does not pass scope['client'] to authorize yet")
def test_fast_path_throttles_per_client(service):
    app, tokens = service
    body = {"maps": [[[1, 1], [1, 2]]]}
    bad = _client(app, "198.51.100.7")
    for i in range(10):
        bad.post("/v1/inspect/wafer-maps", json=body, headers=_bearer(f"g{i}"))
    assert bad.post("/v1/inspect/wafer-maps", json=body, headers=_bearer("g")).status_code == 429
    other = _client(app, "198.51.100.8")
    assert other.post("/v1/inspect/wafer-maps", json=body, headers=_bearer("g")).status_code == 401
    # and the fast path and the FastAPI routes share one budget per client
    assert bad.get("/v1/models", headers=_bearer("g")).status_code == 429
