"""Fixtures of the serve tests: a results-store URL per backend and a migrated ``Store`` on it.

``db_url`` is parametrized over ``sqlite`` (a file in tmp_path) and ``postgresql``: a fresh database per
test on a throwaway local server (initdb + pg_ctl, started once per session; run through
``runuser -u postgres --`` when running as root, trust auth on 127.0.0.1 and a unix socket in the temp
dir), or on the server of ``ADRCS_TEST_POSTGRES_URL`` when that is set. When no server can be had the
postgresql cases are skipped and the reason is printed in the terminal summary.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

PG_ENV = "ADRCS_TEST_POSTGRES_URL"
PG_START_TIMEOUT_S = 20
OUR_TABLES = ("reviews", "inspections", "blobs", "model_events", "model_versions", "api_tokens", "defect_classes",
              "retrain_jobs", "rate_counters", "alembic_version")
_pg_skip_reason: list[str] = []
_db_counter = itertools.count()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], timeout: float) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{os.path.basename(cmd[cmd.index('--') + 1] if '--' in cmd else cmd[0])} failed "
                           f"(rc {res.returncode}): {' | '.join(tail)}")


def _start_local_postgres() -> tuple[str, Callable[[], None]]:
    """Start a throwaway server; return (maintenance-db URL, stop function). Raises RuntimeError with a reason."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")
    prefix: list[str] = []
    tmp = tempfile.mkdtemp(prefix="adrcs-pg-")  # not under pytest's root-only 0700 basetemp
    try:
        if os.geteuid() == 0:  # initdb refuses to run as root
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' system user") from None
            runuser = shutil.which("runuser")
            if not runuser:
                raise RuntimeError("running as root and runuser is not available")
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
            prefix = [runuser, "-u", "postgres", "--"]
        data, log = os.path.join(tmp, "data"), os.path.join(tmp, "server.log")
        _run(prefix + [initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
             timeout=PG_START_TIMEOUT_S)
        port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # throwaway: speed over safety
        _run(prefix + [pg_ctl, "-D", data, "-l", log, "-o", opts, "-w", "-t", str(PG_START_TIMEOUT_S), "start"],
             timeout=PG_START_TIMEOUT_S + 5)
    except BaseException:
        if os.path.isdir(os.path.join(tmp, "data")):  # maybe a half-started server: best-effort stop
            try:
                subprocess.run(prefix + [pg_ctl, "-D", os.path.join(tmp, "data"), "-m", "immediate", "stop"],
                               capture_output=True, timeout=15, check=False)
            except (OSError, subprocess.SubprocessError):
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def stop() -> None:
        try:
            subprocess.run(prefix + [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True,
                           check=False, timeout=30)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """URL of a PostgreSQL server's maintenance database, or None (reason in ``_pg_skip_reason``)."""
    env = os.environ.get(PG_ENV)
    if env:
        yield env
        return
    try:
        url, stop = _start_local_postgres()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        _pg_skip_reason.append(f"no local PostgreSQL server: {e}")
        yield None
        return
    try:
        yield url
    finally:
        stop()


def _psycopg_conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# the postgresql cases start a server process (once per session): slow
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL for the parametrized backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adrcs.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    if server is None:
        pytest.skip(reason=_pg_skip_reason[-1] if _pg_skip_reason else "no PostgreSQL server")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"adrcs_test_{os.getpid()}_{next(_db_counter)}"
    try:
        with psycopg.connect(_psycopg_conninfo(server), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege:  # only the given database may be used: wipe our tables in it
        with psycopg.connect(_psycopg_conninfo(server), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS " + ", ".join(OUR_TABLES) + " CASCADE")
        yield server
        return
    except psycopg.OperationalError as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        _pg_skip_reason.append(f"PostgreSQL server at {make_url(server).render_as_string()} unreachable: {msg}")
        pytest.skip(reason=_pg_skip_reason[-1])
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_psycopg_conninfo(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(db_url: str):
    """A migrated Store on ``db_url``, closed after the test."""
    from adrcs.serve.store import Store

    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()


def pytest_terminal_summary(terminalreporter) -> None:  # make the PostgreSQL skip visible without -rs
    for reason in dict.fromkeys(_pg_skip_reason):
        terminalreporter.write_line(f"adrcs serve tests: postgresql cases skipped ({reason})", yellow=True)


@pytest.fixture(scope="session")
def tiny_wafer_run(tmp_path_factory):
    """A tiny trained FFN wafer run (`helpers.runs.train_wafer_run`, seed 0), shared by the upload and lot tests."""
    import torch
    from helpers.runs import train_wafer_run

    torch.set_num_threads(1)
    return train_wafer_run(tmp_path_factory.mktemp("serve_run"), 0)


def train_trust_run(tmp, seed: int = 0):
    """A tiny FFN wafer run (`helpers.runs.train_wafer_run`) with 45 validation maps (>= 40): training splits them
    into select / calib and fits the trust layer (temperature, prediction sets, unknown score)."""
    from helpers.runs import train_wafer_run

    return train_wafer_run(tmp, seed, per_class=(4, 5), data_seed=20, name="trust")


@pytest.fixture(scope="session")
def trust_wafer_run(tmp_path_factory):
    """A tiny trained wafer run WITH a trust layer (`train_trust_run`, seed 0), shared by the trust tests."""
    import torch

    torch.set_num_threads(1)
    return train_trust_run(tmp_path_factory.mktemp("trust_run"), 0)


@pytest.fixture(params=[True, False], ids=["fast_path", "fastapi_route"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Both paths of the JSON inspect route (`serve/fast_path.py` on and off)."""
    return bool(request.param)


@pytest.fixture
def make_wafer_service(tiny_wafer_run, tmp_path):
    """``make_wafer_service(run=None, **config)`` -> (client, tokens, store) of a service on `run` (default
    `tiny_wafer_run`) with a SQLite store and one token per role (`ServiceConfig` fields in `config`; closed after
    the test)."""
    from contextlib import ExitStack

    from fastapi.testclient import TestClient
    from helpers.service import ROLES

    from adrcs.serve.app import ServiceConfig, create_app
    from adrcs.serve.store import Store

    n = itertools.count()
    with ExitStack() as stack:
        def make(run=None, **config):
            store = Store(f"sqlite:///{tmp_path / f'svc{next(n)}.db'}")
            stack.callback(store.close)
            tokens = {role: store.create_token(role + "-user", role) for role in ROLES}
            cfg = ServiceConfig(db="unused", models=[str(run or tiny_wafer_run)], token_cache_s=0,
                                **{"max_request_bytes": 2_000_000, **config})
            client = stack.enter_context(TestClient(create_app(cfg, store=store)))
            return client, tokens, store

        yield make
