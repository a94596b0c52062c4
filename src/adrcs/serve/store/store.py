"""The results store: inspections, their inputs and reviews, the model registry and API tokens.

One :class:`Store` per process, shared by all threads; every call opens its own session and
transaction, and returns frozen dataclasses (never ORM objects). Everything is append-only except
a model's ``status`` and a token's ``revoked`` flag.

Backends: SQLite file (default ``sqlite:///adrcs.db``; WAL, ``synchronous=FULL`` so that no
acknowledged record is lost across ``kill -9`` or power loss, foreign keys on, write transactions
``BEGIN IMMEDIATE`` so concurrent writers queue on ``busy_timeout`` instead of failing) or PostgreSQL
(``postgresql://user:pw@host/db``, driven by psycopg 3).

Split by concern: `records.py` (the returned dataclasses and helpers), `registry.py` (model versions,
promote / rollback), `tokens.py` (API tokens), `classes.py` (registered defect classes), `sqlite_writer.py`
(the lean SQLite write path); this module has the engine, blobs, inspections, reviews and counts.

Labels: ``predicted`` and review ``label`` hold one class name; a multi-label result is stored as
the compact JSON list of its sorted class names (:func:`encode_labels`, e.g. ``["Center","Scratch"]``).
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Engine, cast, create_engine, event, exists, func, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from adrcs.errors import InputError
from adrcs.serve.store import sqlite_writer
from adrcs.serve.store.classes import ClassesMixin
from adrcs.serve.store.records import (INSPECTION_KINDS, MAX_OFFSET, MAX_PG_ID, MAX_SQLITE_ID, MIGRATIONS_DIR,
                                       MODEL_ACTIONS, MODEL_KINDS, MODEL_STATUSES, REVIEW_ACTIONS, ROLES,
                                       SQLITE_BUSY_TIMEOUT_MS, ApiToken, Inspection, ModelVersion, NewInspection,
                                       NotFound, Review, _inspection, _jsonable, _review, _utc, decode_labels,
                                       encode_labels, hash_token, insert_for, normalize_url, role_allows,
                                       unavailable_reason)
from adrcs.serve.store.registry import RegistryMixin
from adrcs.serve.store.sqlite_writer import RowidsExhausted, SQLiteInspectionWriter
from adrcs.serve.store.schema import BlobRow, InspectionRow, ReviewRow, utcnow
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
class Store(ClassesMixin, RegistryMixin, TokensMixin):
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
