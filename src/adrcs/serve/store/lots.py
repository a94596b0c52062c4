"""Store aggregate: a lot's wafer-map inspections, their summary and the stored maps to stack. Mixed into `Store`
(which provides `_session`); the inspections themselves are listed by `InspectionsMixin.list_inspections`."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from adrcs.serve.store.schema import BlobRow, InspectionRow, ReviewRow

WAFER_MAP = "wafer_map"


class LotsMixin:
    """Per-lot queries over wafer-map inspections (see `Store`)."""

    def lot_summary(self, lot: str, low_confidence: float) -> dict[str, Any]:
        """Numbers over every wafer-map inspection of `lot`: ``wafers`` (inspections), ``distinct_wafers`` (wafer ids),
        ``yield_mean`` (mean stored yield, None when no inspection has one), ``pattern_counts`` (predicted class ->
        count), ``flagged`` (confidence at most `low_confidence`, as in the review queue) and ``reviewed``."""
        c = InspectionRow
        where = (c.lot == lot, c.kind == WAFER_MAP)
        with self._session() as s:
            n, n_wafers, mean_yield, flagged = s.execute(
                select(func.count(), func.count(func.distinct(c.wafer)), func.avg(c.wafer_yield),
                       func.count().filter(c.confidence <= float(low_confidence))).where(*where)).one()
            counts = {p: int(k) for p, k in s.execute(select(c.predicted, func.count()).where(*where)
                                                      .group_by(c.predicted).order_by(c.predicted))}
            reviewed = s.scalar(select(func.count(func.distinct(ReviewRow.inspection_id)))
                                .join(c, c.id == ReviewRow.inspection_id).where(*where))
        return {"wafers": int(n or 0), "distinct_wafers": int(n_wafers or 0),
                "yield_mean": None if mean_yield is None else round(float(mean_yield), 6),
                "pattern_counts": counts, "flagged": int(flagged or 0), "reviewed": int(reviewed or 0)}

    def lot_maps(self, lot: str, max_maps: int, max_bytes: int) -> tuple[list[bytes], int]:
        """The stored input blobs of `lot`'s wafer-map inspections, newest first, each distinct map once: at most
        `max_maps` of them and `max_bytes` in all. Returns ``(blobs, distinct maps of the lot)``."""
        c = InspectionRow
        newest = func.max(c.id)
        q = (select(c.input_sha256, BlobRow.size).join(BlobRow, BlobRow.sha256 == c.input_sha256)
             .where(c.lot == lot, c.kind == WAFER_MAP).group_by(c.input_sha256, BlobRow.size)
             .order_by(newest.desc()))
        with self._session() as s:
            total = int(s.scalar(select(func.count(func.distinct(c.input_sha256)))
                                 .where(c.lot == lot, c.kind == WAFER_MAP)) or 0)
            chosen, used = [], 0
            for sha, size in s.execute(q.limit(max(0, int(max_maps)))):
                if chosen and used + int(size) > max_bytes:
                    break
                chosen.append(sha)
                used += int(size)
            if not chosen:
                return [], total
            rows = dict(s.execute(select(BlobRow.sha256, BlobRow.content).where(BlobRow.sha256.in_(chosen))).all())
        return [bytes(rows[sha]) for sha in chosen if sha in rows], total
