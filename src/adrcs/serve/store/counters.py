"""Rate-limit counters of the results store (a `Store` mixin): fixed windows shared by every replica.

A counter is ``(key, window_start)``; replicas add their local counts with one upsert per sync
(``count = count + delta``, atomic on SQLite and PostgreSQL) and read back the totals.
"""
from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, select

from adrcs.serve.store.records import insert_for
from adrcs.serve.store.schema import RateCounterRow


class CountersMixin:
    """`Store` methods for ``rate_counters`` (uses the store's ``_session``)."""

    def add_counts(self, deltas: Mapping[str, int], window_start: int) -> dict[str, int]:
        """Add `deltas` (key -> n) to the counters of `window_start`; return their new totals."""
        if not deltas:
            return {}
        rows = [{"key": k[:255], "window_start": int(window_start), "count": int(n)} for k, n in sorted(deltas.items())]
        table = RateCounterRow.__table__
        with self._session(write=True) as s:
            stmt = insert_for(s, table)
            stmt = stmt.on_conflict_do_update(index_elements=["key", "window_start"],
                                              set_={"count": table.c.count + stmt.excluded.count})
            s.execute(stmt, rows)  # sorted keys: concurrent replicas lock rows in the same order (no deadlock)
            q = select(table.c.key, table.c.count).where(table.c.window_start == int(window_start),
                                                         table.c.key.in_([r["key"] for r in rows]))
            return {k: int(n) for k, n in s.execute(q)}

    def counts_at_least(self, prefix: str, window_start: int, limit: int) -> dict[str, int]:
        """Counters of `window_start` whose key starts with `prefix` and whose count is at least `limit`."""
        table = RateCounterRow.__table__
        q = select(table.c.key, table.c.count).where(table.c.window_start == int(window_start),
                                                     table.c.key.startswith(prefix, autoescape=True),
                                                     table.c.count >= int(limit))
        with self._session() as s:
            return {k: int(n) for k, n in s.execute(q)}

    def prune_counts(self, before: int) -> int:
        """Delete counters of windows that started before `before` (epoch seconds); how many were deleted."""
        with self._session(write=True) as s:
            return int(s.execute(delete(RateCounterRow).where(RateCounterRow.window_start < int(before))).rowcount or 0)
