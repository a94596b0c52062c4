"""Records and helpers of the results store: the frozen dataclasses it returns, label / token / URL helpers,
and the mapping of ORM rows to records. No database access here."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from adrcs.serve.store.schema import InspectionRow, ModelEventRow, ModelVersionRow, ReviewRow

ROLES = ("inspector", "engineer", "admin")  # each role includes the ones before it
INSPECTION_KINDS = ("wafer_map", "image")
REVIEW_ACTIONS = ("confirm", "correct")
MODEL_KINDS = ("wafer", "detect", "image_classify")
MODEL_STATUSES = ("candidate", "champion", "retired")
MODEL_ACTIONS = ("register", "promote", "rollback", "reject", "move")
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
    die_count: int | None = None      # wafer maps: dies on the wafer
    fail_count: int | None = None     # failing dies
    wafer_yield: float | None = None  # passing share of the tested dies
    decision: str | None = None       # the class, "review" or "unknown" (None: stored before the trust layer)
    unknown_score: float | None = None  # higher = more unusual (None: no unknown scorer)
    pred_set: str | None = None       # the prediction set ("" when the model has none)
    part_type: str | None = None      # the product the map was routed by (None: none given)

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
    die_count: int | None = None
    fail_count: int | None = None
    wafer_yield: float | None = None
    decision: str | None = None       # see `Inspection`
    unknown_score: float | None = None
    pred_set: str | None = None
    part_type: str | None = None      # the product (part type) the map was routed by


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
    part_type: str | None = None  # the product it serves; None: the default of its kind


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


# --------------------------------------------------------------------------------------------- row -> record
def _review(r: ReviewRow) -> Review:
    return Review(id=r.id, inspection_id=r.inspection_id, created_at=r.created_at, reviewer=r.reviewer,
                  action=r.action, label=r.label, note=r.note)


def _inspection(r: InspectionRow, reviews: Sequence[Review] = ()) -> Inspection:
    return Inspection(id=r.id, created_at=r.created_at, kind=r.kind, lot=r.lot, wafer=r.wafer, tool=r.tool,
                      input_sha256=r.input_sha256, model_version=r.model_version, predicted=r.predicted,
                      probabilities=dict(r.probabilities or {}), confidence=float(r.confidence),
                      boxes=None if r.boxes is None else list(r.boxes), request_id=r.request_id,
                      reviews=tuple(reviews), effective_label=reviews[-1].label if reviews else None,
                      die_count=r.die_count, fail_count=r.fail_count, wafer_yield=r.wafer_yield,
                      decision=r.decision, unknown_score=r.unknown_score, pred_set=r.pred_set,
                      part_type=r.part_type)


def _model(r: ModelVersionRow) -> ModelVersion:
    return ModelVersion(version=r.version, kind=r.kind, path=r.path, created_at=r.created_at,
                        metrics=dict(r.metrics or {}), status=r.status, parent=r.parent, part_type=r.part_type)


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
