"""Honest failures: a broken champion model or an unwritable database stops the start-up with one line; when
either breaks while running, requests get 503 (Retry-After for the database), never a path, and /health
says "degraded" with the reason. On both paths of the hot route."""
from __future__ import annotations

import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient

from adrcs.errors import InputError
from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.model_host import ModelHost
from adrcs.serve.startup import check_startup
from adrcs.serve.store import Store
from helpers.runs import small_maps
from helpers.service import ROLES, assert_clean_error


def _registered_store(path, run) -> tuple[Store, dict[str, str], str]:
    store = Store(f"sqlite:///{path}")
    tokens = {role: store.create_token(role, role) for role in ROLES}
    version = ModelHost(store).register(run)
    return store, tokens, version


def _inspect(client, tokens):
    return client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1)},
                       headers={"Authorization": f"Bearer {tokens['inspector']}"})


@pytest.mark.parametrize("damage", ["corrupted", "missing"])
def test_broken_champion_model(run_copy, tmp_path, fast_path, damage):
    store, tokens, version = _registered_store(tmp_path / "a.db", run_copy)
    if damage == "corrupted":
        (run_copy / "model.ckpt").write_bytes(b"\x00garbage" * 100)
    else:
        shutil.rmtree(run_copy)
    cfg = ServiceConfig(fast_path=fast_path, token_cache_s=0)
    with pytest.raises(InputError) as err:  # the CLI calls this before building the app: one line, exit 2
        check_startup(cfg, store)
    assert str(run_copy) in str(err.value) and "\n" not in str(err.value) and version in str(err.value)
    with TestClient(create_app(cfg, store=store), raise_server_exceptions=False) as client:
        for _ in range(2):  # the second one answers from the remembered failure (no reload per request)
            body = assert_clean_error(_inspect(client, tokens), 503)
            assert version in body["detail"] and str(run_copy) not in body["detail"]
        h = client.get("/health")
        assert h.status_code == 503 and h.json()["status"] == "degraded"
        assert any(version in p for p in h.json()["problems"]) and str(tmp_path) not in h.text
        assert client.get("/v1/inspections", headers={"Authorization": f"Bearer {tokens['inspector']}"}
                          ).status_code == 200  # reading the store still works


def test_startup_refuses_bad_model_folders(tmp_path, wafer_run):
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    for bad in (tmp_path / "nope", tmp_path):
        with pytest.raises(InputError) as err:
            check_startup(ServiceConfig(models=[str(bad)]), store)
        assert str(bad) in str(err.value)
    check_startup(ServiceConfig(models=[str(wafer_run)]), store)  # a good one passes


def test_read_only_database_at_start_up(tmp_path, wafer_run):
    path = tmp_path / "ro.db"
    Store(f"sqlite:///{path}").close()
    ro = Store(f"sqlite:///file:{path}?mode=ro&uri=true")  # migrated already: opens, but cannot write
    with pytest.raises(InputError) as err:
        check_startup(ServiceConfig(models=[str(wafer_run)]), ro)
    assert "read-only" in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(InputError) as err:  # not migrated and read-only: Store itself says so in one line
        Store(f"sqlite:///file:{tmp_path / 'empty.db'}?mode=ro&uri=true")
    assert "read-only" in str(err.value) and "\n" not in str(err.value)


def test_read_only_database_while_running(tmp_path, wafer_run, fast_path):
    rw, tokens, _ = _registered_store(tmp_path / "c.db", wafer_run)
    rw.close()
    ro = Store(f"sqlite:///file:{tmp_path / 'c.db'}?mode=ro&uri=true")
    with TestClient(create_app(ServiceConfig(fast_path=fast_path, token_cache_s=0), store=ro),
                    raise_server_exceptions=False) as client:
        r = _inspect(client, tokens)
        body = assert_clean_error(r, 503)
        assert "read-only" in body["detail"] and r.headers["retry-after"].isdigit()
        h = client.get("/health").json()
        assert h["status"] == "degraded" and h["db"] is False and "database is read-only" in h["problems"]
        rid = client.get(f"/v1/inspections/1/review", headers={"Authorization": f"Bearer {tokens['engineer']}"})
        assert rid.status_code in (404, 405)


@pytest.mark.slow
def test_locked_database(make_service, tmp_path, fast_path):
    store = Store(f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout_ms=300)
    svc = make_service(fast_path, store=store)
    svc.inspect(1)
    other = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        r = svc.client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1)}, headers=svc.h())
        body = assert_clean_error(r, 503)
        assert "locked" in body["detail"] and r.headers["retry-after"].isdigit()
        rid = svc.inspect  # reviews write too
        rec_id = svc.client.get("/v1/inspections", headers=svc.h()).json()["items"][0]["id"]
        r = svc.client.post(f"/v1/inspections/{rec_id}/review", json={"action": "confirm"}, headers=svc.h("engineer"))
        assert_clean_error(r, 503)
        h = svc.client.get("/health")
        assert h.status_code == 503 and "database is locked" in h.json()["problems"]
        assert svc.client.get("/v1/inspections", headers=svc.h()).status_code == 200  # reads go on (WAL)
        del rid
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert svc.client.get("/health").json()["status"] == "ok"
    svc.inspect(1)
    assert svc.store.count_inspections() == 2  # nothing half-written, nothing acknowledged and lost


def test_promoting_a_broken_model_is_refused(make_service, run_copy, fast_path):
    svc = make_service(fast_path)
    champion = svc.store.champion("wafer").version
    (run_copy / "model.ckpt").write_bytes(b"broken")
    bad = svc.app.state.host.register(run_copy)
    body = assert_clean_error(svc.client.post(f"/v1/models/{bad}/promote", headers=svc.h("admin")), 409)
    assert bad in body["detail"]
    assert svc.store.champion("wafer").version == champion and svc.client.get("/health").json()["status"] == "ok"
    assert svc.inspect(1)["model_version"] == champion
