"""The model registry of the results store (a `Store` mixin): versions, champions per kind, promote / rollback
(replayed from the event history) and the event log. Champions are per kind *and product*: a version registered
with a ``part_type`` competes only with versions of that part type; ``part_type`` None is the default champion. A version's ``status`` and ``path`` (`move_model`: the
same checkpoint copied into the shared model store) are its only mutable columns."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adrcs.serve.store.records import MODEL_KINDS, ModelVersion, NotFound, _event, _jsonable, _model
from adrcs.serve.store.schema import ModelEventRow, ModelVersionRow, utcnow


def _product(part_type: str | None) -> Any:
    """The condition "serves product `part_type`" (None: the default models)."""
    col = ModelVersionRow.part_type
    return col.is_(None) if part_type is None else col == part_type


def _part(part_type: str | None) -> dict[str, str]:
    """An event's product field: only for a product's version (default models' events stay as they were)."""
    return {} if part_type is None else {"part_type": part_type}


class RegistryMixin:
    """`Store` methods for ``model_versions`` and ``model_events`` (uses the store's ``_session``)."""

    @staticmethod
    def _log(s: Session, version: str, action: str, actor: str, detail: Mapping[str, Any]) -> None:
        s.add(ModelEventRow(created_at=utcnow(), version=version, action=action, actor=actor,
                            detail=_jsonable(dict(detail))))

    def register_model(self, version: str, *, kind: str, path: str, metrics: Mapping[str, Any],
                       parent: str | None = None, actor: str = "system", part_type: str | None = None) -> ModelVersion:
        """Register a new model version as "candidate" (ValueError on a bad kind or an existing version);
        `part_type`: the product it serves (None: a default model of its kind)."""
        if kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
        if not version:
            raise ValueError("version is required")
        try:
            with self._session(write=True) as s:
                if s.get(ModelVersionRow, version) is not None:
                    raise ValueError(f"model version {version!r} already registered")
                row = ModelVersionRow(version=version, kind=kind, path=str(path), created_at=utcnow(),
                                      metrics=_jsonable(dict(metrics)), status="candidate", parent=parent,
                                      part_type=part_type)
                s.add(row)
                self._log(s, version, "register", actor, {"kind": kind, "path": str(path), "parent": parent,
                                                          **_part(part_type)})
                s.flush()
                return _model(row)
        except IntegrityError as e:  # lost a race with another registration
            raise ValueError(f"model version {version!r} already registered") from e

    def move_model(self, version: str, path: str, *, actor: str = "system") -> ModelVersion:
        """Point a registered version at another copy of the same run folder (e.g. into the shared model store:
        same checkpoint, same version); logged as "move". NotFound for an unknown version."""
        with self._session(write=True) as s:
            row = s.get(ModelVersionRow, version)
            if row is None:
                raise NotFound(f"no model version {version!r}")
            old, row.path = row.path, str(path)
            self._log(s, version, "move", actor, {"path": str(path), "from": old})
            s.flush()
            return _model(row)

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
    def _champion_row(s: Session, kind: str | None, part_type: str | None = None) -> ModelVersionRow | None:
        q = select(ModelVersionRow).where(ModelVersionRow.status == "champion", _product(part_type))
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

    def champion(self, kind: str | None = None, part_type: str | None = None) -> ModelVersion | None:
        """The champion of ``kind`` (or, with no kind, the most recently promoted champion) for product
        ``part_type`` (None: the default champion; no fallback here, see `champion_parts`), or None."""
        with self._session() as s:
            row = self._champion_row(s, kind, part_type)
            return None if row is None else _model(row)

    def champion_parts(self, kind: str) -> dict[str, str]:
        """Part type -> champion version of every product of ``kind`` that has its own champion."""
        q = select(ModelVersionRow.part_type, ModelVersionRow.version).where(
            ModelVersionRow.status == "champion", ModelVersionRow.kind == kind, ModelVersionRow.part_type.is_not(None))
        with self._session() as s:
            return {p: v for p, v in s.execute(q)}

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
            rows = [r for r in self._lock_kind(s, row.kind) if r.part_type == row.part_type]  # its product only
            if row.status == "champion":
                raise ValueError(f"{version!r} already is the {row.kind} champion")
            previous = [r.version for r in rows if r.status == "champion"]
            for r in rows:
                if r.status == "champion":
                    r.status = "retired"
            row.status = "champion"
            self._log(s, version, "promote", actor, {"kind": row.kind, **_part(row.part_type),
                                                     "previous": previous[0] if previous else None})
            s.flush()
            return _model(row)

    @staticmethod
    def _champion_history(s: Session, kind: str, part_type: str | None = None) -> list[str]:
        """Champion stack of ``kind`` (product ``part_type``) replayed from events: promote pushes, rollback pops."""
        versions = select(ModelVersionRow.version).where(ModelVersionRow.kind == kind, _product(part_type))
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

    def rollback(self, *, actor: str, kind: str | None = None, part_type: str | None = None) -> ModelVersion:
        """Re-promote the champion that preceded the current one (per the event history) of product `part_type`
        (None: the default champions); the current one is retired. With no kind, the most recently promoted
        champion is rolled back. ValueError if there is none."""
        with self._session(write=True) as s:
            cur = self._champion_row(s, kind, part_type)
            if cur is None:
                what = f"{kind or 'model'} champion" + (f" for part type {part_type!r}" if part_type else "")
                raise ValueError(f"no {what} to roll back")
            rows = {r.version: r for r in self._lock_kind(s, cur.kind) if r.part_type == part_type}
            stack = self._champion_history(s, cur.kind, part_type)
            while stack and stack[-1] == cur.version:
                stack.pop()
            if not stack or stack[-1] not in rows:
                raise ValueError(f"no previous {cur.kind} champion to roll back to")
            prev = rows[stack[-1]]
            rows[cur.version].status = "retired"
            prev.status = "champion"
            self._log(s, prev.version, "rollback", actor, {"kind": cur.kind, **_part(part_type), "from": cur.version})
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
