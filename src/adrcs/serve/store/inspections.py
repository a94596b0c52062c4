"""Store aggregate: content-addressed input blobs, inspections and their (append-only) reviews, and the
counts and queries over them. Mixed into `Store`, which provides the engine, `_session` and the dialect."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, case, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from adrcs.serve.store.records import (INSPECTION_KINDS, MAX_OFFSET, REVIEW_ACTIONS, Inspection, NewInspection,
                                       NotFound, Review, _inspection, _jsonable, _review,
                                       _utc, insert_for)
from adrcs.serve.store.sqlite_writer import RowidsExhausted
from adrcs.serve.store.schema import BlobRow, InspectionRow, ReviewRow, utcnow


UNKNOWN, REVIEW = "unknown", "review"  # the trust layer's two doubts (`inference.trust`)
QUEUE_DECISIONS = (UNKNOWN, REVIEW)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    """A finite float or None (NaN, e.g. the yield of a wafer with no tested die, is stored as None)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class InspectionsMixin:
    """Blobs, inspections and reviews (see `Store`)."""

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
                   "boxes": None if it.boxes is None else _jsonable(list(it.boxes)), "request_id": it.request_id,
                   "die_count": _opt_int(it.die_count), "fail_count": _opt_int(it.fail_count),
                   "wafer_yield": _opt_float(it.wafer_yield), "decision": it.decision,
                   "unknown_score": _opt_float(it.unknown_score), "pred_set": it.pred_set, "part_type": it.part_type}
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
                           confidence=v["confidence"], boxes=v["boxes"], request_id=v["request_id"],
                           die_count=v["die_count"], fail_count=v["fail_count"], wafer_yield=v["wafer_yield"],
                           decision=v["decision"], unknown_score=v["unknown_score"], pred_set=v["pred_set"],
                           part_type=v["part_type"])
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
                 min_confidence: float | None = None, kind: str | None = None, decision: str | None = None,
                 needs_review_below: float | None = None) -> list[Any]:
        c = InspectionRow
        conds: list[Any] = []
        if lot is not None:
            conds.append(c.lot == lot)
        if predicted is not None:
            conds.append(c.predicted == predicted)
        if decision is not None:
            conds.append(c.decision == decision)
        if needs_review_below is not None:  # the review queue: the trust layer's doubts, or a low confidence
            conds.append(or_(c.decision.in_(QUEUE_DECISIONS), c.confidence <= float(needs_review_below)))
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
                         kind: str | None = None, decision: str | None = None,
                         needs_review_below: float | None = None, limit: int = 100, offset: int = 0,
                         newest_first: bool = True, queue_order: bool = False) -> list[Inspection]:
        """Inspections matching every given filter (``since`` inclusive, ``until`` exclusive, confidence bounds
        inclusive, ``reviewed`` = has at least one review, ``decision`` the stored decision, ``needs_review_below``:
        decision unknown or review, or confidence at most this), ordered by time then id, paged by limit/offset.
        ``queue_order``: the review queue's order instead: unknown first, then review, then the rest (older rows
        without a decision too), each by ascending confidence, then oldest first."""
        conds = self._filters(lot=lot, predicted=predicted, since=since, until=until, reviewed=reviewed,
                              max_confidence=max_confidence, min_confidence=min_confidence, kind=kind,
                              decision=decision, needs_review_below=needs_review_below)
        c = InspectionRow
        if queue_order:
            tier = case((c.decision == UNKNOWN, 0), (c.decision == REVIEW, 1), else_=2)
            order: tuple[Any, ...] = (tier, c.confidence.asc(), c.created_at.asc(), c.id.asc())
        else:
            order = (c.created_at.desc(), c.id.desc()) if newest_first else (c.created_at.asc(), c.id.asc())
        q = (select(InspectionRow).where(*conds).order_by(*order).limit(min(max(0, int(limit)), MAX_OFFSET))
             .offset(min(max(0, int(offset)), MAX_OFFSET)))
        with self._session() as s:
            return self._with_reviews(s, list(s.scalars(q)))

    def count_inspections(self, *, lot: str | None = None, predicted: str | None = None, since: datetime | None = None,
                          until: datetime | None = None, reviewed: bool | None = None,
                          max_confidence: float | None = None, min_confidence: float | None = None,
                          kind: str | None = None, decision: str | None = None,
                          needs_review_below: float | None = None) -> int:
        """Number of inspections matching the filters of :meth:`list_inspections`."""
        conds = self._filters(lot=lot, predicted=predicted, since=since, until=until, reviewed=reviewed,
                              max_confidence=max_confidence, min_confidence=min_confidence, kind=kind,
                              decision=decision, needs_review_below=needs_review_below)
        with self._session() as s:
            return int(s.scalar(select(func.count()).select_from(InspectionRow).where(*conds)) or 0)

    def queue_candidates(self, *, limit: int, **filters: Any) -> list[Any]:
        """Rows ``(id, kind, predicted, probabilities, boxes)`` (attribute access) of the newest ``limit``
        inspections matching the filters of :meth:`list_inspections`, newest first: the pool that the review
        queue's label-suggestion order ranks (`serve/queue_suggest.py`). No reviews are read."""
        c = InspectionRow
        q = (select(c.id, c.kind, c.predicted, c.probabilities, c.boxes).where(*self._filters(**filters))
             .order_by(c.created_at.desc(), c.id.desc()).limit(min(max(0, int(limit)), MAX_OFFSET)))
        with self._session() as s:
            return list(s.execute(q))

    def inspections_by_id(self, ids: Sequence[int]) -> list[Inspection]:
        """The inspections of ``ids`` with their reviews, in the order given; unknown ids are left out."""
        ids = [int(i) for i in ids if self.valid_id(int(i))]
        if not ids:
            return []
        with self._session() as s:
            rows = {r.id: r for r in s.scalars(select(InspectionRow).where(InspectionRow.id.in_(ids)))}
            return self._with_reviews(s, [rows[i] for i in ids if i in rows])

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

    def recent_predictions(self, n: int, *, kind: str | None = None, model_version: str | None = None,
                           with_decision: bool = False, part_type: str | None = None,
                           other_parts: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
        """``(predicted, confidence, lot)`` of the newest ``n`` inspections (optionally of one kind / model
        version), newest first; ``with_decision``: ``(predicted, confidence, lot, decision)``. Products:
        ``part_type`` keeps that part type's only; ``other_parts`` (the products with their own champion) keeps
        those of the default champion: no part type, or one not listed."""
        if with_decision:
            q = select(InspectionRow.predicted, InspectionRow.confidence, InspectionRow.lot, InspectionRow.decision)
        else:
            q = select(InspectionRow.predicted, InspectionRow.confidence, InspectionRow.lot)
        if kind is not None:
            q = q.where(InspectionRow.kind == kind)
        if model_version is not None:
            q = q.where(InspectionRow.model_version == model_version)
        if part_type is not None:
            q = q.where(InspectionRow.part_type == part_type)
        elif other_parts:
            q = q.where(or_(InspectionRow.part_type.is_(None), InspectionRow.part_type.not_in(list(other_parts))))
        q = q.order_by(InspectionRow.created_at.desc(), InspectionRow.id.desc()).limit(max(0, int(n)))
        with self._session() as s:
            return [(r[0], float(r[1]), *r[2:]) for r in s.execute(q)]
