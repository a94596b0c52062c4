"""The results store: inspections, their inputs and reviews, the model registry and API tokens.

One :class:`Store` per process, shared by all threads; every call opens its own session and
transaction, and returns frozen dataclasses (never ORM objects). Everything is append-only except
a model's ``status`` and a token's ``revoked`` flag.

Backends: SQLite file (default ``sqlite:///adrcs.db``; WAL, ``synchronous=FULL`` so that no
acknowledged record is lost across ``kill -9`` or power loss, foreign keys on, write transactions
``BEGIN IMMEDIATE`` so concurrent writers queue on ``busy_timeout`` instead of failing) or PostgreSQL
(``postgresql://user:pw@host/db``, driven by psycopg 3).

Split by concern: `records.py` (the returned dataclasses and helpers), `registry.py` (model versions,
promote / rollback), `tokens.py` (API tokens), `classes.py` (registered defect classes), `jobs.py` (retrain
jobs), `counters.py` (rate-limit counters shared by replicas), `sqlite_writer.py` (the lean SQLite write
path), `inspections.py` (blobs, inspections, reviews and counts), `lots.py` (a lot's
summary and stored maps); this module is the facade: the engine, sessions, migrations and health probes.

Labels: ``predicted`` and review ``label`` hold one class name; a multi-label result is stored as
the compact JSON list of its sorted class names (:func:`encode_labels`, e.g. ``["Center","Scratch"]``).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from adrcs.errors import InputError
from adrcs.serve.store import sqlite_writer
from adrcs.serve.store.classes import ClassesMixin
from adrcs.serve.store.counters import CountersMixin
from adrcs.serve.store.inspections import InspectionsMixin
from adrcs.serve.store.jobs import JobsMixin
from adrcs.serve.store.lots import LotsMixin
from adrcs.serve.store.records import (INSPECTION_KINDS, MAX_OFFSET, MAX_PG_ID, MAX_SQLITE_ID, MIGRATIONS_DIR,
                                       MODEL_ACTIONS, MODEL_KINDS, MODEL_STATUSES, REVIEW_ACTIONS, ROLES,
                                       SQLITE_BUSY_TIMEOUT_MS, ApiToken, Inspection, ModelVersion, NewInspection,
                                       NotFound, Review, decode_labels, encode_labels, hash_token, insert_for, normalize_url,
                                       role_allows, unavailable_reason)
from adrcs.serve.store.registry import RegistryMixin
from adrcs.serve.store.sqlite_writer import SQLiteInspectionWriter
from adrcs.serve.store.tokens import TokensMixin

__all__ = ["Store", "NewInspection", "Inspection", "Review", "ModelVersion", "ApiToken", "NotFound", "ROLES",
           "INSPECTION_KINDS", "REVIEW_ACTIONS", "MODEL_KINDS", "MODEL_STATUSES", "MODEL_ACTIONS", "MIGRATIONS_DIR",
           "MAX_OFFSET", "MAX_PG_ID", "MAX_SQLITE_ID", "SQLITE_BUSY_TIMEOUT_MS", "encode_labels", "decode_labels",
           "role_allows", "hash_token", "normalize_url", "alembic_config", "upgrade", "unavailable_reason",
           "insert_for"]


def alembic_config(url: str | URL) -> Any:
    """An ``alembic.config.Config`` for the packaged migrations (e.g. ``command.revision(cfg, autogenerate=True)``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    u = normalize_url(url)
    cfg.set_main_option("sqlalchemy.url", u.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the packaged Alembic migrations up to ``revision`` on ``engine`` (one transaction)."""
    from alembic import command

    cfg = alembic_config(engine.url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _sqlite_events(engine: Engine, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """WAL + synchronous=FULL + foreign keys + busy timeout; BEGIN IMMEDIATE for write transactions."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # a deferred read that later writes can fail at once with SQLITE_BUSY; IMMEDIATE waits instead
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("adrcs_write") else "BEGIN")


# --------------------------------------------------------------------------------------------- store
class Store(InspectionsMixin, LotsMixin, ClassesMixin, RegistryMixin, TokensMixin, JobsMixin, CountersMixin):
    """Thread-safe results store over SQLAlchemy (SQLite file or PostgreSQL)."""

    def __init__(self, url: str = "sqlite:///adrcs.db", migrate: bool = True,
                 busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
        """Create the engine (``sqlite:///relative/path.db`` is relative to the working directory; missing
        parent folders are created) and, when ``migrate``, run ``alembic upgrade head``.

        ``busy_timeout_ms``: how long a SQLite write waits for another process's lock before failing
        (then the service answers 503). InputError (naming the URL, no password) when the database
        cannot be opened or migrated, e.g. a read-only file."""
        u = normalize_url(url)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.dialect = u.get_backend_name()
        # a server connection can drop between uses: check it out with a ping; a SQLite file cannot
        kwargs: dict[str, Any] = {"pool_pre_ping": self.dialect != "sqlite"}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": self.busy_timeout_ms / 1000}
            if u.database in (None, "", ":memory:"):  # one shared connection, else each one is a new empty db
                kwargs["poolclass"] = StaticPool
            elif not self._sqlite_uri(u):  # a file: URI (e.g. ?mode=ro) names the file as it is
                from adrcs.serve.private_files import ensure_private_sqlite

                ensure_private_sqlite(u)  # created 0600 (no link followed) before SQLite opens it; folders made
        self.url = u
        # SQLite has one writer at a time: this process's writers queue on a lock and go the moment it is free
        # (SQLite's own busy handler sleeps 1-100 ms between tries); other processes still get busy_timeout
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else None
        # inspections of a SQLite file are written by a lean DBAPI path (the service's hot path)
        self._fast_writer: SQLiteInspectionWriter | None = None
        if (self.dialect == "sqlite" and u.database not in (None, "", ":memory:") and not self._sqlite_uri(u)
                and sqlite_writer.supported()):
            self._fast_writer = SQLiteInspectionWriter(str(Path(u.database).expanduser()), self.busy_timeout_ms)
        self._engine = create_engine(u, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_events(self._engine, self.busy_timeout_ms)
        self._write_engine = self._engine.execution_options(adrcs_write=True)
        self._read = sessionmaker(bind=self._engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self._write_engine, expire_on_commit=False)
        self.max_id = MAX_SQLITE_ID if self.dialect == "sqlite" else MAX_PG_ID
        if migrate:
            try:
                upgrade(self._write_engine)
            except (DBAPIError, PoolTimeout, sqlite3.Error) as e:
                self._engine.dispose()
                reason = unavailable_reason(e) or "database cannot be migrated"
                detail = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
                raise InputError(self.safe_url, f"{reason}: the service needs a writable database ({detail})") from None

    @staticmethod
    def _sqlite_uri(u: URL) -> bool:
        return str(u.query.get("uri", "")).lower() in ("true", "1") or str(u.database or "").startswith("file:")

    @property
    def safe_url(self) -> str:
        """The database URL with any password hidden (for messages and logs)."""
        from urllib.parse import unquote

        return unquote(self.url.render_as_string(hide_password=True))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for health checks and tests)."""
        return self._engine

    def close(self) -> None:
        """Close all pooled connections."""
        if self._fast_writer is not None:
            with self._write_lock:
                self._fast_writer.close()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def ping(self) -> bool:
        """True when the database answers ``SELECT 1``."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - a health probe reports, never raises
            return False

    def check_writable(self, timeout_s: float = 1.0) -> str | None:
        """None when a write transaction can be opened and a row written (then rolled back); else a short reason
        (locked, read-only, unreachable). Waits at most about ``timeout_s`` for a lock held elsewhere."""
        try:
            if self.dialect == "sqlite" and self.url.database not in (None, "", ":memory:"):
                # a fresh connection with a short busy timeout: the engine's would wait busy_timeout_ms
                uri = self._sqlite_uri(self.url)
                database = self.url.database if uri else str(Path(self.url.database).expanduser())
                if uri and self.url.query:  # the URI's own options (mode=ro, ...) travel with it
                    options = "&".join(f"{k}={v}" for k, v in self.url.query.items() if k != "uri")
                    database = f"{database}?{options}" if options else database
                conn = sqlite3.connect(database, timeout=timeout_s, isolation_level=None, uri=uri)
                try:
                    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute("UPDATE alembic_version SET version_num = version_num")
                    finally:
                        conn.execute("ROLLBACK")
                finally:
                    conn.close()
                return None
            with self._write_engine.connect() as conn, conn.begin() as tx:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeout_s * 1000)}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000) + 1000}")
                conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
                tx.rollback()
            return None
        except Exception as e:  # noqa: BLE001 - a health probe reports, never raises
            return unavailable_reason(e) or "database is unavailable"

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        """One session + transaction; committed on normal exit (durable before the caller returns)."""
        if write and self._write_lock is not None:
            with self._write_lock, self._write() as s, s.begin():
                yield s
            return
        with (self._write if write else self._read)() as s, s.begin():
            yield s

    # ----------------------------------------------------------------------------------------- blobs
