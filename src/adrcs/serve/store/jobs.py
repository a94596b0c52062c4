"""Retrain jobs of the results store (a `Store` mixin): any replica can report a job another one runs."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update

from adrcs.serve.store.records import _jsonable
from adrcs.serve.store.schema import RetrainJobRow, utcnow

JOB_STATUSES = ("running", "done", "failed")


def _job(r: RetrainJobRow) -> dict[str, Any]:
    out: dict[str, Any] = {"job": r.id, "status": r.status, "started": r.started_at.isoformat(), "actor": r.actor,
                           "replica": r.replica}
    if r.finished_at is not None:
        out["finished"] = r.finished_at.isoformat()
    if r.result is not None:
        out["result"] = dict(r.result)
    if r.error is not None:
        out["error"] = r.error
    return out


class JobsMixin:
    """`Store` methods for ``retrain_jobs`` (uses the store's ``_session``)."""

    def create_job(self, job_id: str, *, actor: str, replica: str) -> dict[str, Any]:
        """Record a new running job (the id is the primary key: a duplicate id raises IntegrityError)."""
        with self._session(write=True) as s:
            row = RetrainJobRow(id=job_id, status="running", actor=actor, replica=replica[:255], started_at=utcnow())
            s.add(row)
            s.flush()
            return _job(row)

    def finish_job(self, job_id: str, *, status: str, result: Mapping[str, Any] | None = None,
                   error: str | None = None) -> None:
        """Mark a job done or failed, with its result or a short error."""
        if status not in JOB_STATUSES[1:]:
            raise ValueError(f"status must be one of {JOB_STATUSES[1:]}, got {status!r}")
        with self._session(write=True) as s:
            s.execute(update(RetrainJobRow).where(RetrainJobRow.id == job_id).values(
                status=status, finished_at=utcnow(), result=None if result is None else _jsonable(dict(result)),
                error=None if error is None else error[:500]))

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """A job as ``{"job", "status", "started", "actor", "replica"[, "finished", "result", "error"]}``, or None."""
        with self._session() as s:
            row = s.get(RetrainJobRow, job_id)
            return None if row is None else _job(row)
