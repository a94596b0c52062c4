"""SQLAlchemy 2.x ORM tables of the results store.

Append-only except ``model_versions.status`` and ``api_tokens.revoked``. Any change here needs a new
Alembic revision under ``migrations/versions`` (tests check the two agree).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Text, UniqueConstraint)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamp on every backend.

    Binds convert to UTC (naive input is taken as UTC); SQLite stores naive UTC text, PostgreSQL
    ``timestamptz``. Results always come back aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base; constraint names follow ``NAMING`` so migrations stay portable."""

    metadata = MetaData(naming_convention=NAMING)


class BlobRow(Base):
    """Input content, stored once per sha256."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InspectionRow(Base):
    """One prediction on one input."""

    __tablename__ = "inspections"
    # the review queue (0004): a decision filter, and each queue tier (unknown, review) by ascending confidence
    __table_args__ = (Index("ix_inspections_decision_confidence", "decision", "confidence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    lot: Mapped[str | None] = mapped_column(String(128), index=True)
    wafer: Mapped[str | None] = mapped_column(String(128))
    tool: Mapped[str | None] = mapped_column(String(128))
    input_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"), index=True)
    model_version: Mapped[str] = mapped_column(String(128))
    predicted: Mapped[str] = mapped_column(String(255), index=True)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float, index=True)
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
    # wafer maps (0003): dies on the wafer, failing dies, passing share of the tested dies (None: unknown)
    die_count: Mapped[int | None] = mapped_column(Integer)
    fail_count: Mapped[int | None] = mapped_column(Integer)
    wafer_yield: Mapped[float | None] = mapped_column(Float)
    # the trust layer's answer (0004; None on older rows): the decision (the class, "review" or "unknown"; a
    # multi-label model: the decided labels joined by ";"), the unknown-pattern score, the prediction set
    decision: Mapped[str | None] = mapped_column(String(255))
    unknown_score: Mapped[float | None] = mapped_column(Float)
    pred_set: Mapped[str | None] = mapped_column(Text)
    # the product (0006): the part type the map was routed by (None: none given); drift is judged per product
    part_type: Mapped[str | None] = mapped_column(String(128), index=True)


class ReviewRow(Base):
    """A human review of an inspection; the latest (highest id) one is effective."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reviewer: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)


class ModelVersionRow(Base):
    """A registered model; ``status`` and ``path`` (moved into the model store) are its mutable columns."""

    __tablename__ = "model_versions"
    version: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(String(128))
    # the product (part type) this version serves (0006); None: the default champion of its kind
    part_type: Mapped[str | None] = mapped_column(String(128), index=True)


class ModelEventRow(Base):
    """Registry history (register/promote/rollback/reject); rollback replays it."""

    __tablename__ = "model_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    version: Mapped[str] = mapped_column(String(128), index=True)  # no FK: a rejected challenger may be unregistered
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class ApiTokenRow(Base):
    """An API token: only its sha256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ClassRow(Base):
    """A defect class an admin registered for a model kind (review labels beyond the model's own classes)."""

    __tablename__ = "defect_classes"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_defect_classes_kind_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))


class RetrainJobRow(Base):
    """A retrain job (0005): started by one replica, readable from every replica."""

    __tablename__ = "retrain_jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    actor: Mapped[str] = mapped_column(String(255))
    replica: Mapped[str] = mapped_column(String(255))  # host:pid of the replica that runs it
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class RateCounterRow(Base):
    """A fixed-window rate-limit counter shared by the replicas (0005); old windows are pruned."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # epoch seconds
    count: Mapped[int] = mapped_column(BigInteger)


__all__ = ["Base", "BlobRow", "InspectionRow", "ReviewRow", "ModelVersionRow", "ModelEventRow", "ApiTokenRow",
           "ClassRow", "RetrainJobRow", "RateCounterRow", "UTCDateTime", "utcnow", "NAMING"]
