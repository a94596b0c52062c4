"""Fixtures of the service security tests: one tiny trained wafer model per session, and a service on it
through FastAPI's test client, parametrized over the fast path (``fast_path=True``) and the FastAPI route.

Helpers (`assert_clean_error`, `small_maps`) are imported by the test files as ``adrcs_security_helpers``
(this module under a stable name: a plain ``from conftest import`` can pick another folder's conftest)."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("adrcs_root_conftest_for_security", REPO / "tests" / "conftest.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)  # the root conftest's data makers
# pytest imports every conftest.py as `conftest`: when this one is imported last, other folders'
# `from conftest import make_wafer, run_cli, ...` land here, so the root's makers are re-exported
for _name in dir(helpers):
    if _name.startswith(("make_", "run_")) or _name in ("to_255", "pattern_mask"):
        globals().setdefault(_name, getattr(helpers, _name))
ROLES = ("inspector", "engineer", "admin")
sys.modules.setdefault("adrcs_security_helpers", sys.modules[__name__])


@pytest.fixture(scope="session")
def wafer_run(tmp_path_factory) -> Path:
    """A tiny trained FFN run folder (16x16 input, width 8, one epoch)."""
    import torch

    from adrcs.api import train
    from adrcs.config import load_config

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("security_run")
    files = []
    for i, n in enumerate([4, 2]):
        p = tmp / f"wm{i}.pkl.xz"
        helpers.make_wm811k_frame(np.random.default_rng(10 + i), per_class=n).to_pickle(p)
        files.append(p)
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml",
                      {"epochs": 1, "input_size": 16, "device": "cpu", "batch_size": 16, "seed": 0,
                       "model_args": {"width": 8}, "progress": False})
    run = tmp / "run"
    train(cfg, [files[0]], [files[1]], run, say=lambda s: None)
    return run


@pytest.fixture
def run_copy(wafer_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder (tests may corrupt it)."""
    dst = tmp_path / "run_copy"
    shutil.copytree(wafer_run, dst)
    return dst


class Service:
    """A running test service: ``client``, ``tokens`` (role -> token), ``store``, ``app``."""

    def __init__(self, client: TestClient, tokens: dict[str, str], store: Store, app: Any) -> None:
        self.client, self.tokens, self.store, self.app = client, tokens, store, app

    def h(self, role: str = "inspector") -> dict[str, str]:
        """Authorization header of a role."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def inspect(self, n: int = 1, **extra: Any) -> dict:
        """Inspect `n` small maps (200 expected)."""
        r = self.client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(n), **extra}, headers=self.h())
        assert r.status_code == 200, r.text
        return r.json()


def small_maps(n: int, side: int = 20, seed: int = 0) -> list:
    """`n` valid die-code maps as nested lists."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.ones((side, side), np.int64)
        m[:2], m[:, :2] = 0, 0
        m[rng.random((side, side)) < 0.2] = 2
        out.append(m.tolist())
    return out


@pytest.fixture
def make_service(wafer_run: Path, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``make_service(fast_path, models=None, store=None, **config)`` -> a started `Service` (closed after)."""
    opened: list[TestClient] = []

    def make(fast_path: bool = True, models: list[str] | None = None, store: Store | None = None,
             **config: Any) -> Service:
        store = store or Store(f"sqlite:///{tmp_path / f'svc{len(opened)}.db'}")
        tokens = {role: store.create_token(f"{role}-{len(opened)}", role) for role in ROLES}
        cfg = ServiceConfig(db="unused", models=[str(m) for m in (models or [wafer_run])], token_cache_s=0,
                            fast_path=fast_path, **{"max_request_bytes": 2_000_000, **config})
        app = create_app(cfg, store=store)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return Service(client, tokens, store, app)

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture(params=[True, False], ids=["fast_path", "fastapi_route"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Both paths of the hot route."""
    return bool(request.param)


@pytest.fixture
def service(make_service: Callable[..., Service], fast_path: bool) -> Service:
    """A started service on the tiny model, for each path."""
    return make_service(fast_path)


def assert_clean_error(r: Any, status: int | tuple[int, ...]) -> dict:
    """The answer has the status, a one-line detail and a request id, and leaks no path, class name or trace."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    detail = body["detail"] if isinstance(body["detail"], str) else str(body["detail"])
    assert "\n" not in detail and "Traceback" not in r.text
    for leak in ("/tmp/", "/work/", "/home/", "/root/", "site-packages", "Error:", "Exception", "sqlite3.",
                 "sqlalchemy", "pytest-of"):
        assert leak not in r.text, (leak, r.text)
    assert body.get("request_id") and r.headers.get("x-request-id") == body["request_id"]
    return body
