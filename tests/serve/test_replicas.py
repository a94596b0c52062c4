"""Service replicas on one store: promote / rollback seen by every replica, shared rate limits, X-Forwarded-For
only from trusted proxies, models in the shared model store, retrain jobs in the store, ``--workers`` checks."""
from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.cli import run_cli
from helpers.runs import small_maps, train_wafer_run
from helpers.service import auth

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.model_host import ModelHost, ModelUnavailable
from adrcs.serve.model_store import ModelStore
from adrcs.serve.shared_limits import SharedLimits
from adrcs.serve.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """Another tiny wafer run (seed 1): a different checkpoint, so a different version."""
    return train_wafer_run(tmp_path_factory.mktemp("replica_runs"), 1)


@contextmanager
def replica(db_url: str, **config) -> Iterator[TestClient]:
    """One replica: its own Store (connection pool) and app on the shared database."""
    store = Store(db_url)
    cfg = ServiceConfig(db="unused", token_cache_s=0, max_request_bytes=2_000_000, **config)
    try:
        with TestClient(create_app(cfg, store=store)) as client:
            yield client
    finally:
        store.close()


def _wait_for(check, timeout_s: float = 6.0, every_s: float = 0.1):
    """Poll `check()` until it returns something truthy (returned) or the timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "not seen within the timeout"
        time.sleep(every_s)


def test_workers_need_postgresql_and_proxies_must_be_addresses(tmp_path, capsys) -> None:
    code, out, err = run_cli(["serve", "--workers", "2", "--db", f"sqlite:///{tmp_path / 'a.db'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--workers 2 needs a PostgreSQL --db" in err
    assert "Traceback" not in err and not (tmp_path / "a.db").exists()  # refused before anything is opened
    code, _, err = run_cli(["serve", "--workers", "0"], capsys)
    assert code == 2 and "--workers must be >= 1" in err
    code, _, err = run_cli(["serve", "--trusted-proxy", "10.0.0.1,lb.example", "--db",
                            f"sqlite:///{tmp_path / 'b.db'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--trusted-proxy 'lb.example'" in err
    code, _, err = run_cli(["serve", "--rate-limit", "-1"], capsys)
    assert code == 2 and "--rate-limit must be >= 0" in err


def test_promote_and_rollback_on_one_replica_reach_the_other(db_url, tiny_wafer_run, second_run) -> None:
    with replica(db_url, models=[str(tiny_wafer_run), str(second_run)]) as a, replica(db_url) as b:
        token = a.app.state.store.create_token("admin-user", "admin")
        b.app.state.host.refresh_s = 0.5  # the default 2 s also passes, slower

        def version_on(client: TestClient) -> str:
            r = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1)}, headers=auth(token))
            assert r.status_code == 200, r.text
            return r.json()["model_version"]

        first = version_on(b)
        other = next(m["version"] for m in a.get("/v1/models", headers=auth(token)).json()["models"]
                     if m["version"] != first)
        assert a.post(f"/v1/models/{other}/promote", headers=auth(token)).status_code == 200
        t0 = time.monotonic()
        _wait_for(lambda: version_on(b) == other)
        assert time.monotonic() - t0 < 5.0
        assert a.post("/v1/models/rollback", headers=auth(token)).status_code == 200
        _wait_for(lambda: version_on(b) == first)
        assert b.get("/v1/models", headers=auth(token)).json()["champions"]["wafer"] == first


def test_rate_limits_are_shared_by_replicas(db_url, tiny_wafer_run) -> None:
    opts = dict(rate_limit=4, limits_sync_s=0.1)
    with replica(db_url, models=[str(tiny_wafer_run)], **opts) as a, replica(db_url, **opts) as b:
        token = a.app.state.store.create_token("line-7", "inspector")
        for client in (a, b):  # a frozen clock: the test never straddles two windows
            client.app.state.config.auth_max_failures = 3
            st = client.app.state
            st.shared_limits = SharedLimits(st.store, auth_max_failures=3, auth_window_s=60, rate_limit=4,
                                            sync_s=0.1, clock=lambda: 6_000_000.0)
        for _ in range(4):  # the token's 4 requests of this minute, all on replica A
            assert a.get("/v1/classes", headers=auth(token)).status_code == 200
        r = _wait_for(lambda: (r := b.get("/v1/classes", headers=auth(token))).status_code == 429 and r)
        assert "rate limit" in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
        # failed token checks of one client on replica A block it on replica B too, before its token is looked at
        for _ in range(3):
            assert a.get("/v1/classes", headers=auth("wrong")).status_code == 401
        r = _wait_for(lambda: (r := b.get("/v1/classes", headers=auth("guess"))).status_code == 429 and r)
        assert "failed token checks" in r.json()["detail"]
        rows = a.app.state.store.counts_at_least("", 6_000_000, 1)
        # B let a request or two through before its first sync: the bound of `shared_limits`
        assert 4 <= rows["token:line-7"] <= 6 and 3 <= rows["auth:testclient"] <= 5


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted_proxy", "untrusted_peer"])
def test_forwarded_for_only_from_trusted_proxies(tmp_path, tiny_wafer_run, trusted) -> None:
    # TestClient's peer is "testclient": trusted as a literal here (the CLI accepts addresses and networks only)
    proxies = ["testclient"] if trusted else ["10.0.0.1"]
    with replica(f"sqlite:///{tmp_path / 'x.db'}", models=[str(tiny_wafer_run)], trusted_proxies=proxies) as c:
        c.app.state.config.auth_max_failures = 2
        for _ in range(2):
            assert c.get("/v1/classes", headers={**auth("bad"), "X-Forwarded-For": "1.2.3.4"}).status_code == 401
        assert c.get("/v1/classes", headers={**auth("bad"), "X-Forwarded-For": "1.2.3.4"}).status_code == 429
        other = c.get("/v1/classes", headers={**auth("bad"), "X-Forwarded-For": "5.6.7.8"}).status_code
        # trusted: 5.6.7.8 is another client (401); untrusted: the header is ignored, same peer, still blocked
        assert other == (401 if trusted else 429)


def test_registry_keeps_paths_relative_to_the_model_store(tmp_path, tiny_wafer_run, second_run) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    # a version registered before there was a model store (host-local path) ...
    old = ModelHost(store).register(second_run, promote_if_first=False)
    assert Path(store.get_model(old).path).is_absolute()
    models = tmp_path / "shared" / "models"
    host = ModelHost(store, model_store=ModelStore(models))
    version = host.register(tiny_wafer_run)
    row = store.get_model(version)
    assert row.path == version and (models / version / "model.ckpt").is_file()
    assert stat.S_IMODE((models / version).stat().st_mode) == 0o700
    assert stat.S_IMODE((models / version / "model.ckpt").stat().st_mode) == 0o600
    host.register(second_run, promote_if_first=False)  # ... is moved into the store when registered again
    assert store.get_model(old).path == old and store.model_events(old)[-1]["action"] == "move"
    assert not any(Path(m.path).is_absolute() for m in store.list_models())
    # another host mounts the same store elsewhere: the relative paths resolve against its mount
    mount = tmp_path / "other_host_mount"
    mount.symlink_to(models)
    loaded = ModelHost(store, model_store=ModelStore(mount)).current("wafer")
    assert loaded.version == version and Path(loaded.path).parent == mount.resolve()
    with pytest.raises(ModelUnavailable):  # a replica without --model-store cannot load it: 503, not a crash
        ModelHost(store).current("wafer")
    store.close()


def test_retrain_jobs_live_in_the_store(store) -> None:
    job = store.create_job("a" * 32, actor="admin", replica="host-a:1")
    assert job["status"] == "running" and job["replica"] == "host-a:1"
    store.finish_job("a" * 32, status="done", result={"challenger": "wafer-x", "promoted": False})
    got = store.get_job("a" * 32)
    assert got["status"] == "done" and got["result"]["challenger"] == "wafer-x" and "finished" in got
    assert store.get_job("nope") is None
    assert store.add_counts({"k:a": 2, "k:b": 1}, 60) == {"k:a": 2, "k:b": 1}
    assert store.add_counts({"k:a": 3}, 60) == {"k:a": 5}
    assert store.counts_at_least("k:", 60, 2) == {"k:a": 5}
    assert store.prune_counts(120) == 2 and store.counts_at_least("k:", 60, 0) == {}


@pytest.mark.slow
def test_retrain_writes_into_the_model_store_and_any_replica_reports_it(tmp_path, tiny_wafer_run) -> None:
    db, models = f"sqlite:///{tmp_path / 'rt.db'}", tmp_path / "models"
    retrain = {"overrides": {"epochs": 1, "progress": False}}
    with replica(db, models=[str(tiny_wafer_run)], model_store=str(models), retrain=retrain) as a, \
            replica(db, model_store=str(models)) as b:
        store = a.app.state.store
        admin, eng = store.create_token("admin-user", "admin"), store.create_token("eng", "engineer")
        r = a.post("/v1/inspect/wafer-maps", json={"maps": small_maps(12, seed=2)}, headers=auth(admin))
        names = sorted(r.json()["results"][0]["probabilities"])
        for i, res in enumerate(r.json()["results"]):
            assert a.post(f"/v1/inspections/{res['id']}/review", json={"action": "correct", "label": names[i % 9]},
                          headers=auth(eng)).status_code == 200
        job = a.post("/v1/models/retrain", headers=auth(admin)).json()["job"]
        done = _wait_for(lambda: (j := b.get(f"/v1/models/retrain/{job}", headers=auth(admin)).json())["status"]
                         != "running" and j, timeout_s=180, every_s=1.0)
        assert done["status"] == "done", done
        challenger = store.get_model(done["result"]["challenger"])
        assert challenger.path == f"runs/{job}" and (models / "runs" / job / "model.ckpt").is_file()
        assert not any(Path(m.path).is_absolute() for m in store.list_models())
