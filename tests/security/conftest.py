"""Fixtures of the service security tests: one tiny trained wafer model per session, and a service on it
through FastAPI's test client, parametrized over the fast path (``fast_path=True``) and the FastAPI route.
The helpers the tests use (`Service`, `ROLES`, `assert_clean_error`, `small_maps`) are in ``helpers.service``
and ``helpers.runs``."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers.runs import train_wafer_run
from helpers.service import ROLES, Service

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store


@pytest.fixture(scope="session")
def wafer_run(tmp_path_factory) -> Path:
    """A tiny trained FFN run folder (16x16 input, width 8, one epoch)."""
    import torch

    torch.set_num_threads(1)
    return train_wafer_run(tmp_path_factory.mktemp("security_run"), 0)


@pytest.fixture
def run_copy(wafer_run: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder (tests may corrupt it)."""
    dst = tmp_path / "run_copy"
    shutil.copytree(wafer_run, dst)
    return dst


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
