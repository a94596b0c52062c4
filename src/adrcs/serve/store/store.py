"""The results store: inspections, their inputs and reviews, the model registry and API tokens.

One :class:`Store` per process, shared by all threads; every call opens its own session and
transaction, and returns frozen dataclasses (never ORM objects). Everything is append-only except
a model's ``status`` and a token's ``revoked`` flag.

Backends: SQLite file (default ``sqlite:///adrcs.db``; WAL, ``synchronous=FULL`` so that no
acknowledged record is lost across ``kill -9`` or power loss, foreign keys on, write transactions
``BEGIN IMMEDIATE`` so concurrent writers queue on ``busy_timeout`` instead of failing) or PostgreSQL
(``postgresql://user:pw@host/db``, driven by psycopg 3).

Labels: ``predicted`` and review ``label`` hold one class name; a multi-label result is stored as
the compact JSON list of its sorted class names (:func:`encode_labels`, e.g. ``["Center","Scratch"]``).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Engine, cast, create_engine, event, exists, func, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from adrcs.errors import InputError
from adrcs.serve.store import sqlite_writer
from adrcs.serve.store.classes import ClassesMixin
from adrcs.serve.store.sqlite_writer import RowidsExhausted, SQLiteInspectionWriter
from adrcs.serve.store.schema import (ApiTokenRow, BlobRow, InspectionRow, ModelEventRow, ModelVersionRow,
                                      ReviewRow, utcnow)

ROLES = ("inspector", "engineer", "admin")  # each role includes the ones before it
INSPECTION_KINDS = ("wafer_map", "image")
REVIEW_ACTIONS = ("confirm", "correct")
MODEL_KINDS = ("wafer", "detect", "image_classify")
MODEL_STATUSES = ("candidate", "champion", "retired")
MODEL_ACTIONS = ("register", "promote", "rollback", "reject")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_SQLITE_ID = 2**63 - 1   # SQLite rowid
MAX_PG_ID = 2**31 - 1       # PostgreSQL ``integer`` id columns
MAX_OFFSET = 2**63 - 1      # LIMIT / OFFSET are 64-bit on both backends


class NotFound(KeyError):
    """An unknown inspection id, blob, model version or token name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def unavailable_reason(exc: BaseException) -> str | None:
    """A short, path-free reason when ``exc`` means the database cannot serve now (locked, read-only, full,
    unreachable); None for any other error (a bug, a bad value)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None and not isinstance(exc, (OperationalError, InternalError)):
        return None
    text = str(getattr(exc, "orig", None) or exc).lower()
    if not isinstance(exc, (OperationalError, InternalError, PoolTimeout, sqlite3.OperationalError,
                            sqlite3.DatabaseError)):
        return None
    if "locked" in text or "busy" in text or "lock timeout" in text:
        return "database is locked"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "database is read-only"
    if "full" in text:
        return "database disk is full"
    if isinstance(exc, InternalError):
        return None
    return "database is unavailable"


# --------------------------------------------------------------------------------------------- records
def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (datetimes as ISO 8601 strings, nested records as dicts)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and isinstance(v[0], _Record):
                v = [r.to_dict() for r in v]
            out[f.name] = _iso(v)
        return out


@dataclass(frozen=True)
class Review(_Record):
    """One review of one inspection."""

    id: int
    inspection_id: int
    created_at: datetime
    reviewer: str
    action: str  # "confirm" | "correct"
    label: str
    note: str | None = None


@dataclass(frozen=True)
class Inspection(_Record):
    """A stored inspection with its reviews (oldest first); ``effective_label`` is the latest review's label."""

    id: int
    created_at: datetime
    kind: str
    lot: str | None
    wafer: str | None
    tool: str | None
    input_sha256: str
    model_version: str
    predicted: str
    probabilities: dict[str, float]
    confidence: float
    boxes: list[dict[str, Any]] | None = None
    request_id: str | None = None
    reviews: tuple[Review, ...] = ()
    effective_label: str | None = None

    @property
    def reviewed(self) -> bool:
        """True when at least one review exists."""
        return bool(self.reviews)

    @property
    def label(self) -> str:
        """The effective label when reviewed, else the prediction."""
        return self.effective_label if self.effective_label is not None else self.predicted


@dataclass(frozen=True)
class NewInspection:
    """An inspection to store: give ``content`` + ``media_type`` (blob stored in the same transaction)
    or the ``input_sha256`` of a blob already stored. ``created_at`` defaults to now (UTC)."""

    kind: str  # "wafer_map" | "image"
    model_version: str
    predicted: str
    probabilities: Mapping[str, float]
    confidence: float
    content: bytes | None = None
    media_type: str | None = None
    input_sha256: str | None = None
    lot: str | None = None
    wafer: str | None = None
    tool: str | None = None
    boxes: Sequence[Mapping[str, Any]] | None = None  # [{class, score, x1, y1, x2, y2}]
    request_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ModelVersion(_Record):
    """A registered model version."""

    version: str
    kind: str  # "wafer" | "detect" | "image_classify"
    path: str
    created_at: datetime
    metrics: dict[str, Any]
    status: str  # "candidate" | "champion" | "retired"
    parent: str | None = None


@dataclass(frozen=True)
class ApiToken(_Record):
    """An API token's public part (the hash never leaves the store)."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked: bool


# --------------------------------------------------------------------------------------------- helpers
def encode_labels(labels: Iterable[str]) -> str:
    """Multi-label ``predicted``/``label`` value: compact JSON list of the sorted, distinct class names."""
    return json.dumps(sorted(set(labels)), separators=(",", ":"))


def decode_labels(value: str) -> list[str]:
    """Inverse of :func:`encode_labels`; a plain class name gives a one-element list."""
    if value.startswith("["):
        return list(json.loads(value))
    return [value]


def role_allows(role: str, required: str) -> bool:
    """True when ``role`` includes ``required`` (inspector < engineer < admin)."""
    return role in ROLES and required in ROLES and ROLES.index(role) >= ROLES.index(required)


def hash_token(token: str) -> str:
    """sha256 hex of a token, the only form stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; ``postgresql://`` / ``postgres://`` get the psycopg (v3) driver."""
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


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


# --------------------------------------------------------------------------------------------- row -> record
def _review(r: ReviewRow) -> Review:
    return Review(id=r.id, inspection_id=r.inspection_id, created_at=r.created_at, reviewer=r.reviewer,
                  action=r.action, label=r.label, note=r.note)


def _inspection(r: InspectionRow, reviews: Sequence[Review] = ()) -> Inspection:
    return Inspection(id=r.id, created_at=r.created_at, kind=r.kind, lot=r.lot, wafer=r.wafer, tool=r.tool,
                      input_sha256=r.input_sha256, model_version=r.model_version, predicted=r.predicted,
                      probabilities=dict(r.probabilities or {}), confidence=float(r.confidence),
                      boxes=None if r.boxes is None else list(r.boxes), request_id=r.request_id,
                      reviews=tuple(reviews), effective_label=reviews[-1].label if reviews else None)


def _model(r: ModelVersionRow) -> ModelVersion:
    return ModelVersion(version=r.version, kind=r.kind, path=r.path, created_at=r.created_at,
                        metrics=dict(r.metrics or {}), status=r.status, parent=r.parent)


def _event(r: ModelEventRow) -> dict[str, Any]:
    return {"id": r.id, "created_at": r.created_at, "version": r.version, "action": r.action, "actor": r.actor,
            "detail": dict(r.detail or {})}


def insert_for(s: Session, table: Any) -> Any:
    """An INSERT construct of the session's dialect (SQLite / PostgreSQL ones know ON CONFLICT)."""
    name = s.get_bind().dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy import insert
    return insert(table)


# --------------------------------------------------------------------------------------------- store
class Store(ClassesMixin):
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
    def put_blob(self, content: bytes, media_type: str) -> str:
        """Store ``content`` once (idempotent; the first media type is kept) and return its sha256 hex."""
        if not media_type:
            raise ValueError("media_type is required")
        content = bytes(content)
        sha = hashlib.sha256(content).hexdigest()
        with self._session(write=True) as s:
            self._insert_blobs(s, [{"sha256": sha, "media_type": media_type, "size": len(content), "content": content,
                                    "created_at": utcnow()}])
        return sha

    def get_blob(self, sha256: str) -> tuple[bytes, str] | None:
        """``(content, media_type)`` of a stored blob, or None."""
        with self._session() as s:
            row = s.execute(select(BlobRow.content, BlobRow.media_type).where(BlobRow.sha256 == sha256.lower())).first()
            return None if row is None else (bytes(row[0]), row[1])

    # ----------------------------------------------------------------------------------------- inspections
    @staticmethod
    def _check_new(it: NewInspection) -> None:
        if it.kind not in INSPECTION_KINDS:
            raise ValueError(f"kind must be one of {INSPECTION_KINDS}, got {it.kind!r}")
        if it.content is None and not it.input_sha256:
            raise ValueError("give content (+ media_type) or input_sha256")
        if it.content is not None:
            if not it.media_type:
                raise ValueError("media_type is required with content")
            if it.input_sha256 and it.input_sha256.lower() != hashlib.sha256(it.content).hexdigest():
                raise ValueError("input_sha256 does not match content")
        if not it.model_version or not it.predicted:
            raise ValueError("model_version and predicted are required")

    def add_inspections(self, items: Iterable[NewInspection]) -> list[Inspection]:
        """Store inspections (and their input blobs) in one transaction, committed before returning.

        Raises ValueError for an invalid item and NotFound for an ``input_sha256`` not stored; then nothing is stored.
        """
        items = list(items)
        for it in items:
            self._check_new(it)
        if not items:
            return []
        now = utcnow()
        blobs: dict[str, dict[str, Any]] = {}
        shas, referenced = [], set()
        for it in items:
            if it.content is not None:
                content = bytes(it.content)
                sha = hashlib.sha256(content).hexdigest()
                blobs.setdefault(sha, {"sha256": sha, "media_type": str(it.media_type), "size": len(content),
                                       "content": content, "created_at": now})
            else:
                sha = str(it.input_sha256).lower()
                referenced.add(sha)
            shas.append(sha)
        values = [{"created_at": _utc(it.created_at) or now, "kind": it.kind, "lot": it.lot, "wafer": it.wafer,
                   "tool": it.tool, "input_sha256": sha, "model_version": it.model_version,
                   "predicted": it.predicted, "probabilities": {str(k): float(v) for k, v in it.probabilities.items()},
                   "confidence": float(it.confidence),
                   "boxes": None if it.boxes is None else _jsonable(list(it.boxes)), "request_id": it.request_id}
                  for it, sha in zip(items, shas)]
        if self._fast_writer is not None:
            with self._write_lock:
                try:
                    ids, missing = self._fast_writer.insert(list(blobs.values()), values,
                                                            sorted(referenced - set(blobs)))
                except RowidsExhausted:
                    self._fast_writer.close()
                    self._fast_writer = None
                else:
                    if missing:
                        raise NotFound(f"no blob {sorted(missing)[0]}")
                    return self._inspections_from(ids, values)
        with self._session(write=True) as s:
            missing = referenced - set(blobs)
            if missing:
                found = set(s.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(sorted(missing)))))
                if missing - found:
                    raise NotFound(f"no blob {sorted(missing - found)[0]}")
            if blobs:  # one multi-row insert; content already stored is skipped
                self._insert_blobs(s, list(blobs.values()))
            table = InspectionRow.__table__  # a Core insert: no ORM bulk-persistence work per row
            ids = s.scalars(insert_for(s, table).returning(table.c.id, sort_by_parameter_order=True), values).all()
        return self._inspections_from(ids, values)

    @staticmethod
    def _inspections_from(ids: Sequence[int], values: list[dict[str, Any]]) -> list[Inspection]:
        return [Inspection(id=int(i), created_at=v["created_at"], kind=v["kind"], lot=v["lot"], wafer=v["wafer"],
                           tool=v["tool"], input_sha256=v["input_sha256"], model_version=v["model_version"],
                           predicted=v["predicted"], probabilities=dict(v["probabilities"]),
                           confidence=v["confidence"], boxes=v["boxes"], request_id=v["request_id"])
                for i, v in zip(ids, values)]

    @staticmethod
    def _insert_blobs(s: Session, values: list[dict[str, Any]]) -> None:
        name = s.get_bind().dialect.name
        if name in ("sqlite", "postgresql"):
            stmt = insert_for(s, BlobRow.__table__).on_conflict_do_nothing(index_elements=["sha256"])
            s.execute(stmt, values)
            return
        have = set(s.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_([v["sha256"] for v in values]))))
        for v in values:
            if v["sha256"] not in have:
                s.add(BlobRow(**v))
        s.flush()

    @staticmethod
    def _reviews_of(s: Session, ids: Sequence[int]) -> dict[int, list[Review]]:
        out: dict[int, list[Review]] = {i: [] for i in ids}
        if ids:
            q = select(ReviewRow).where(ReviewRow.inspection_id.in_(list(ids))).order_by(ReviewRow.id)
            for r in s.scalars(q):
                out[r.inspection_id].append(_review(r))
        return out

    def _with_reviews(self, s: Session, rows: Sequence[InspectionRow]) -> list[Inspection]:
        reviews = self._reviews_of(s, [r.id for r in rows])
        return [_inspection(r, reviews[r.id]) for r in rows]

    def valid_id(self, inspection_id: int) -> bool:
        """True when ``inspection_id`` fits the backend's id column (1 .. max_id)."""
        return isinstance(inspection_id, int) and 1 <= inspection_id <= self.max_id

    def get_inspection(self, inspection_id: int) -> Inspection | None:
        """One inspection with its reviews (oldest first) and effective label, or None (also for an id out of
        the backend's range)."""
        if not self.valid_id(int(inspection_id)):
            return None
        with self._session() as s:
            row = s.get(InspectionRow, int(inspection_id))
            return None if row is None else self._with_reviews(s, [row])[0]

    @staticmethod
    def _filters(*, lot: str | None = None, predicted: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, reviewed: bool | None = None, max_confidence: float | None = None,
                 min_confidence: float | None = None, kind: str | None = None) -> list[Any]:
        c = InspectionRow
        conds: list[Any] = []
        if lot is not None:
            conds.append(c.lot == lot)
        if predicted is not None:
            conds.append(c.predicted == predicted)
        if since is not None:
            conds.append(c.created_at >= _utc(since))
        if until is not None:
            conds.append(c.created_at < _utc(until))
        if max_confidence is not None:
            conds.append(c.confidence <= float(max_confidence))
        if min_confidence is not None:
            conds.append(c.confidence >= float(min_confidence))
        if kind is not None:
            conds.append(c.kind == kind)
        if reviewed is not None:
            has = exists().where(ReviewRow.inspection_id == c.id)
            conds.append(has if reviewed else ~has)
        return conds

    def list_inspections(self, *, lot: str | None = None, predicted: str | None = None, since: datetime | None = None,
                         until: datetime | None = None, reviewed: bool | None = None,
                         max_confidence: float | None = None, min_confidence: float | None = None,
                         kind: str | None = None, limit: int = 100, offset: int = 0,
                         newest_first: bool = True) -> list[Inspection]:
        """Inspections matching every given filter (``since`` inclusive, ``until`` exclusive, confidence bounds
        inclusive, ``reviewed`` = has at least one review), ordered by time then id, paged by limit/offset."""
        conds = self._filters(lot=lot, predicted=predicted, since=since, until=until, reviewed=reviewed,
                              max_confidence=max_confidence, min_confidence=min_confidence, kind=kind)
        order = ((InspectionRow.created_at.desc(), InspectionRow.id.desc()) if newest_first
                 else (InspectionRow.created_at.asc(), InspectionRow.id.asc()))
        q = (select(InspectionRow).where(*conds).order_by(*order).limit(min(max(0, int(limit)), MAX_OFFSET))
             .offset(min(max(0, int(offset)), MAX_OFFSET)))
        with self._session() as s:
            return self._with_reviews(s, list(s.scalars(q)))

    def count_inspections(self, *, lot: str | None = None, predicted: str | None = None, since: datetime | None = None,
                          until: datetime | None = None, reviewed: bool | None = None,
                          max_confidence: float | None = None, min_confidence: float | None = None,
                          kind: str | None = None) -> int:
        """Number of inspections matching the filters of :meth:`list_inspections`."""
        conds = self._filters(lot=lot, predicted=predicted, since=since, until=until, reviewed=reviewed,
                              max_confidence=max_confidence, min_confidence=min_confidence, kind=kind)
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(InspectionRow).where(*conds)) or 0)

    def add_review(self, inspection_id: int, *, action: str, label: str | None = None, reviewer: str,
                   note: str | None = None) -> Review:
        """Append a review; the inspection itself is never changed.

        ``label`` is the confirmed/corrected class (for "confirm" it defaults to the prediction).
        Raises NotFound (a KeyError) for an unknown id, ValueError for a bad action or missing label.
        """
        if action not in REVIEW_ACTIONS:
            raise ValueError(f"action must be one of {REVIEW_ACTIONS}, got {action!r}")
        if not reviewer:
            raise ValueError("reviewer is required")
        if not self.valid_id(int(inspection_id)):
            raise NotFound(f"no inspection {inspection_id}")
        with self._session(write=True) as s:
            predicted = s.scalar(select(InspectionRow.predicted).where(InspectionRow.id == int(inspection_id)))
            if predicted is None:
                raise NotFound(f"no inspection {inspection_id}")
            if not label:
                if action != "confirm":
                    raise ValueError("label is required for a correction")
                label = predicted
            row = ReviewRow(inspection_id=int(inspection_id), created_at=utcnow(), reviewer=reviewer,
                            action=action, label=label, note=note)
            s.add(row)
            s.flush()
            return _review(row)

    def reviewed_inspections(self, since_id: int | None = None, limit: int | None = None) -> list[Inspection]:
        """Inspections with at least one review and id > ``since_id``, oldest first (for retraining/audit)."""
        q = select(InspectionRow).where(exists().where(ReviewRow.inspection_id == InspectionRow.id))
        if since_id is not None:
            q = q.where(InspectionRow.id > int(since_id))
        q = q.order_by(InspectionRow.id)
        if limit is not None:
            q = q.limit(int(limit))
        with self._session() as s:
            return self._with_reviews(s, list(s.scalars(q)))

    def class_counts(self, *, by: str = "lot", since: datetime | None = None,
                     until: datetime | None = None) -> list[dict[str, Any]]:
        """Predicted-class counts per lot or per UTC day (ISO date string).

        Rows ``{"lot"|"day": key, "predicted": cls, "count": n}``, sorted by key (None first) then class.
        """
        if by not in ("lot", "day"):
            raise ValueError(f"by must be 'lot' or 'day', got {by!r}")
        conds = self._filters(since=since, until=until)
        pred = InspectionRow.predicted
        with self._session() as s:
            name = s.get_bind().dialect.name
            if by == "lot":
                key: Any = InspectionRow.lot
            elif name == "sqlite":  # stored as naive UTC text
                key = func.date(InspectionRow.created_at)
            elif name == "postgresql":
                key = cast(func.timezone("UTC", InspectionRow.created_at), Date)
            else:
                key = None
            if key is not None:
                q = select(key, pred, func.count()).where(*conds).group_by(key, pred)
                counts = {(k, p): int(n) for k, p, n in s.execute(q)}
            else:  # portable fallback: bucket in Python
                counts = {}
                for ts, p in s.execute(select(InspectionRow.created_at, pred).where(*conds)):
                    k = ts.date()
                    counts[(k, p)] = counts.get((k, p), 0) + 1
        rows = []
        for (k, p), n in counts.items():
            if isinstance(k, date):
                k = k.isoformat()
            rows.append({by: k, "predicted": p, "count": n})
        rows.sort(key=lambda r: (r[by] is not None, r[by] or "", r["predicted"]))
        return rows

    def recent_predictions(self, n: int, *, kind: str | None = None,
                           model_version: str | None = None) -> list[tuple[str, float, str | None]]:
        """``(predicted, confidence, lot)`` of the newest ``n`` inspections (optionally of one kind / model
        version), newest first."""
        q = select(InspectionRow.predicted, InspectionRow.confidence, InspectionRow.lot)
        if kind is not None:
            q = q.where(InspectionRow.kind == kind)
        if model_version is not None:
            q = q.where(InspectionRow.model_version == model_version)
        q = q.order_by(InspectionRow.created_at.desc(), InspectionRow.id.desc()).limit(max(0, int(n)))
        with self._session() as s:
            return [(p, float(c), lot) for p, c, lot in s.execute(q)]

    # ----------------------------------------------------------------------------------------- model registry
    @staticmethod
    def _log(s: Session, version: str, action: str, actor: str, detail: Mapping[str, Any]) -> None:
        s.add(ModelEventRow(created_at=utcnow(), version=version, action=action, actor=actor,
                            detail=_jsonable(dict(detail))))

    def register_model(self, version: str, *, kind: str, path: str, metrics: Mapping[str, Any],
                       parent: str | None = None, actor: str = "system") -> ModelVersion:
        """Register a new model version as "candidate" (ValueError on a bad kind or an existing version)."""
        if kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
        if not version:
            raise ValueError("version is required")
        try:
            with self._session(write=True) as s:
                if s.get(ModelVersionRow, version) is not None:
                    raise ValueError(f"model version {version!r} already registered")
                row = ModelVersionRow(version=version, kind=kind, path=str(path), created_at=utcnow(),
                                      metrics=_jsonable(dict(metrics)), status="candidate", parent=parent)
                s.add(row)
                self._log(s, version, "register", actor, {"kind": kind, "path": str(path), "parent": parent})
                s.flush()
                return _model(row)
        except IntegrityError as e:  # lost a race with another registration
            raise ValueError(f"model version {version!r} already registered") from e

    def get_model(self, version: str) -> ModelVersion | None:
        """One model version, or None."""
        with self._session() as s:
            row = s.get(ModelVersionRow, version)
            return None if row is None else _model(row)

    def list_models(self) -> list[ModelVersion]:
        """All model versions, oldest first."""
        with self._session() as s:
            q = select(ModelVersionRow).order_by(ModelVersionRow.created_at, ModelVersionRow.version)
            return [_model(r) for r in s.scalars(q)]

    @staticmethod
    def _champion_row(s: Session, kind: str | None) -> ModelVersionRow | None:
        q = select(ModelVersionRow).where(ModelVersionRow.status == "champion")
        if kind is not None:
            q = q.where(ModelVersionRow.kind == kind)
        rows = list(s.scalars(q))
        if len(rows) <= 1:
            return rows[0] if rows else None
        # several kinds: the one promoted (or rolled back to) last
        last = dict(s.execute(select(ModelEventRow.version, func.max(ModelEventRow.id))
                              .where(ModelEventRow.version.in_([r.version for r in rows]),
                                     ModelEventRow.action.in_(("promote", "rollback")))
                              .group_by(ModelEventRow.version)).all())
        return max(rows, key=lambda r: (last.get(r.version, 0), r.created_at))

    def champion(self, kind: str | None = None) -> ModelVersion | None:
        """The champion of ``kind`` (or, with no kind, the most recently promoted champion), or None."""
        with self._session() as s:
            row = self._champion_row(s, kind)
            return None if row is None else _model(row)

    @staticmethod
    def _lock_kind(s: Session, kind: str) -> list[ModelVersionRow]:
        # row locks on PostgreSQL; SQLite write transactions are already exclusive (BEGIN IMMEDIATE)
        # populate_existing: rows read before the lock was granted are refreshed (a concurrent promote committed)
        q = (select(ModelVersionRow).where(ModelVersionRow.kind == kind).order_by(ModelVersionRow.version)
             .with_for_update().execution_options(populate_existing=True))
        return list(s.scalars(q))

    def promote(self, version: str, *, actor: str) -> ModelVersion:
        """Make ``version`` the champion of its kind; the previous champion becomes "retired"; logged.

        Raises NotFound for an unknown version, ValueError if it already is the champion.
        """
        with self._session(write=True) as s:
            row = s.get(ModelVersionRow, version)
            if row is None:
                raise NotFound(f"no model version {version!r}")
            rows = self._lock_kind(s, row.kind)
            if row.status == "champion":
                raise ValueError(f"{version!r} already is the {row.kind} champion")
            previous = [r.version for r in rows if r.status == "champion"]
            for r in rows:
                if r.status == "champion":
                    r.status = "retired"
            row.status = "champion"
            self._log(s, version, "promote", actor, {"kind": row.kind, "previous": previous[0] if previous else None})
            s.flush()
            return _model(row)

    @staticmethod
    def _champion_history(s: Session, kind: str) -> list[str]:
        """Champion stack of ``kind`` replayed from events: promote pushes, rollback pops."""
        versions = select(ModelVersionRow.version).where(ModelVersionRow.kind == kind)
        q = (select(ModelEventRow.version, ModelEventRow.action)
             .where(ModelEventRow.action.in_(("promote", "rollback")), ModelEventRow.version.in_(versions))
             .order_by(ModelEventRow.id))
        stack: list[str] = []
        for v, action in s.execute(q):
            if action == "rollback" and stack:
                stack.pop()
            if not stack or stack[-1] != v:
                stack.append(v)
        return stack

    def rollback(self, *, actor: str, kind: str | None = None) -> ModelVersion:
        """Re-promote the champion that preceded the current one (per the event history); the current one is
        retired. With no kind, the most recently promoted champion is rolled back. ValueError if there is none."""
        with self._session(write=True) as s:
            cur = self._champion_row(s, kind)
            if cur is None:
                raise ValueError(f"no {kind or 'model'} champion to roll back")
            rows = {r.version: r for r in self._lock_kind(s, cur.kind)}
            stack = self._champion_history(s, cur.kind)
            while stack and stack[-1] == cur.version:
                stack.pop()
            if not stack or stack[-1] not in rows:
                raise ValueError(f"no previous {cur.kind} champion to roll back to")
            prev = rows[stack[-1]]
            rows[cur.version].status = "retired"
            prev.status = "champion"
            self._log(s, prev.version, "rollback", actor, {"kind": cur.kind, "from": cur.version})
            s.flush()
            return _model(prev)

    def log_model_event(self, version: str, action: str, actor: str, detail: Mapping[str, Any]) -> None:
        """Log an informational registry event, e.g. "reject" of a challenger (register/promote/rollback are
        logged by their own methods and refused here, as they drive :meth:`rollback`)."""
        if not action or action in ("register", "promote", "rollback"):
            raise ValueError(f"action {action!r} is logged by its own method")
        with self._session(write=True) as s:
            self._log(s, version, action, actor, detail)

    def model_events(self, version: str | None = None) -> list[dict[str, Any]]:
        """Registry events oldest first: ``{"id", "created_at", "version", "action", "actor", "detail"}``."""
        q = select(ModelEventRow).order_by(ModelEventRow.id)
        if version is not None:
            q = q.where(ModelEventRow.version == version)
        with self._session() as s:
            return [_event(r) for r in s.scalars(q)]

    # ----------------------------------------------------------------------------------------- tokens
    def create_token(self, name: str, role: str) -> str:
        """Create a token and return its plaintext (shown once; only its sha256 is stored).

        ValueError on a bad role, an empty name or a name already used (revoked names stay taken).
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if not name:
            raise ValueError("token name is required")
        token = secrets.token_urlsafe(32)
        try:
            with self._session(write=True) as s:
                if s.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)) is not None:
                    raise ValueError(f"token name {name!r} already exists")
                s.add(ApiTokenRow(name=name, role=role, token_hash=hash_token(token), created_at=utcnow(),
                                  revoked=False))
        except IntegrityError as e:
            raise ValueError(f"token name {name!r} already exists") from e
        return token

    def check_token(self, token: str) -> tuple[str, str] | None:
        """``(name, role)`` of a valid token, None if unknown or revoked (lookup by hash, compare_digest)."""
        if not token:
            return None
        h = hash_token(token)
        with self._session() as s:
            row = s.execute(select(ApiTokenRow.name, ApiTokenRow.role, ApiTokenRow.token_hash, ApiTokenRow.revoked)
                            .where(ApiTokenRow.token_hash == h)).first()
        if row is None or not hmac.compare_digest(row.token_hash, h) or row.revoked:
            return None
        return row.name, row.role

    def revoke_token(self, name: str) -> None:
        """Revoke a token by name (NotFound if unknown; revoking twice is fine)."""
        with self._session(write=True) as s:
            res = s.execute(update(ApiTokenRow).where(ApiTokenRow.name == name).values(revoked=True))
            if res.rowcount == 0:
                raise NotFound(f"no token {name!r}")

    def list_tokens(self) -> list[ApiToken]:
        """All tokens (without hashes), oldest first."""
        with self._session() as s:
            return [ApiToken(id=r.id, name=r.name, role=r.role, created_at=r.created_at, revoked=bool(r.revoked))
                    for r in s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]
