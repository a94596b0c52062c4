"""Defect classes an admin registers per model kind, so reviews can record a pattern the model does not know yet.

A review label must be one of the model's classes or a registered class of the same kind; `adapt` then
finds the new pattern among the reviewed inspections. Names are 1..100 printable characters and may not
start with ``[`` (reserved for multi-label values, see ``encode_labels``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adrcs.serve.store.schema import ClassRow, utcnow

CLASS_KINDS = ("wafer", "detect", "image_classify")
MAX_CLASS_NAME = 100


@dataclass(frozen=True)
class DefectClass:
    """A registered defect class."""

    name: str
    kind: str
    created_at: datetime
    actor: str

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"name": self.name, "kind": self.kind, "created_at": self.created_at.isoformat(), "actor": self.actor}


def check_class_name(name: object) -> str:
    """The stripped class name, or ValueError saying what is wrong with it."""
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    name = name.strip()
    if not 1 <= len(name) <= MAX_CLASS_NAME:
        raise ValueError(f"name must be 1..{MAX_CLASS_NAME} characters")
    if name.startswith("[") or not name.isprintable():
        raise ValueError("name must be printable text not starting with '['")
    return name


def _record(r: ClassRow) -> DefectClass:
    return DefectClass(name=r.name, kind=r.kind, created_at=r.created_at, actor=r.actor)


class ClassesMixin:
    """`Store` methods for the ``defect_classes`` table (uses the store's ``_session``)."""

    def add_class(self, name: str, kind: str, *, actor: str) -> tuple[DefectClass, bool]:
        """Register ``name`` for ``kind``; returns ``(class, created)`` (registering twice is not an error).
        ValueError on a bad name or kind."""
        name = check_class_name(name)
        if kind not in CLASS_KINDS:
            raise ValueError(f"kind must be one of {list(CLASS_KINDS)}")
        try:
            with self._session(write=True) as s:  # type: ignore[attr-defined]
                row = s.scalar(select(ClassRow).where(ClassRow.kind == kind, ClassRow.name == name))
                if row is not None:
                    return _record(row), False
                row = ClassRow(kind=kind, name=name, created_at=utcnow(), actor=actor)
                s.add(row)
                s.flush()
                return _record(row), True
        except IntegrityError:  # lost a race with the same registration
            return next(c for c in self.list_classes(kind) if c.name == name), False

    def list_classes(self, kind: str | None = None) -> list[DefectClass]:
        """Registered classes (of one kind), oldest first."""
        q = select(ClassRow).order_by(ClassRow.id)
        if kind is not None:
            q = q.where(ClassRow.kind == kind)
        with self._session() as s:  # type: ignore[attr-defined]
            return [_record(r) for r in s.scalars(q)]
