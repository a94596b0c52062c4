"""The hot write path of a SQLite file store: inspections and their input blobs in few DBAPI calls.

Under load the service writes a group of inspections per transaction from one thread while the
event loop runs in another. Every sqlite3 call releases the GIL and must take it back, and
SQLAlchemy's per-statement work holds the GIL; both slow the event loop. This writer does a
transaction as ``BEGIN IMMEDIATE``, one multi-row blob insert, one multi-row inspection insert with
explicit ids (largest id + 1, + 2, ...: known without fetching a row per id) and ``COMMIT`` on a
dedicated connection. It stores exactly what the ORM path stores (same ids and column text formats:
naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` timestamps, JSON text, ``'null'`` for no boxes), so reads
through SQLAlchemy see no difference.

Callers hold the store's in-process write lock around :meth:`SQLiteInspectionWriter.insert`.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

BLOB_COLUMNS = ("sha256", "media_type", "size", "content", "created_at")
INSPECTION_COLUMNS = ("created_at", "kind", "lot", "wafer", "tool", "input_sha256", "model_version", "predicted",
                      "probabilities", "confidence", "boxes", "request_id", "die_count", "fail_count", "wafer_yield",
                      "decision", "unknown_score", "pred_set", "part_type")
ROWS_PER_STATEMENT = 500  # at most; fewer when the SQLite build allows fewer bound parameters
# ids are explicit (largest id + k for the k-th row, in input order), so they are known without fetching rows
_ROW = "(" + ",".join("?" * (1 + len(INSPECTION_COLUMNS))) + ")"
_INSERT_INSPECTIONS = (
    f"INSERT INTO inspections (id,{','.join(INSPECTION_COLUMNS)}) "
    f"SELECT m.base + v.column1,{','.join(f'v.column{j}' for j in range(2, 2 + len(INSPECTION_COLUMNS)))} "
    "FROM (VALUES {values}) AS v, (SELECT coalesce(max(id), 0) AS base FROM inspections) AS m ORDER BY v.column1")


class RowidsExhausted(RuntimeError):
    """Inspection ids reached 2**63 - 1; the caller falls back to the general path (SQLite's random rowids)."""


def supported() -> bool:
    """True when the linked SQLite knows ``ON CONFLICT DO NOTHING`` (3.24+)."""
    return sqlite3.sqlite_version_info >= (3, 24, 0)


def sqlite_timestamp(value: datetime) -> str:
    """The text SQLAlchemy stores for a UTC timestamp on SQLite (naive UTC, microseconds)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(value: Any) -> str:
    return json.dumps(value)  # what SQLAlchemy's JSON type writes (None -> 'null')


def _values_sql(table: str, columns: Sequence[str], rows: int, tail: str = "") -> str:
    one = "(" + ",".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({','.join(columns)}) VALUES {','.join([one] * rows)}{tail}"


class SQLiteInspectionWriter:
    """One write connection to a SQLite file; :meth:`insert` is one durable transaction."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._conn: sqlite3.Connection | None = None
        self._rows = ROWS_PER_STATEMENT

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                   check_same_thread=False)  # used by one thread at a time, under the write lock
            for pragma in (f"busy_timeout = {self.busy_timeout_ms}", "journal_mode = WAL", "synchronous = FULL",
                           "foreign_keys = ON"):
                conn.execute(f"PRAGMA {pragma}")
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows = max(1, min(ROWS_PER_STATEMENT, limit // (2 + len(INSPECTION_COLUMNS))))
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection (a later insert opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def insert(self, blobs: Sequence[dict[str, Any]], inspections: Sequence[dict[str, Any]],
               referenced: Sequence[str] = ()) -> tuple[list[int], set[str]]:
        """Insert blobs (existing sha256s are skipped) and inspections in one transaction.

        `referenced` are sha256s the inspections use without sending content: when any is not
        stored, nothing is written and the missing ones are returned with no ids.
        Returns ``(inspection ids in input order, missing sha256s)``.
        """
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            step = self._rows
            missing = set(referenced)
            for i in range(0, len(referenced), step):
                part = list(referenced[i:i + step])
                missing -= {r[0] for r in cur.execute(
                    f"SELECT sha256 FROM blobs WHERE sha256 IN ({','.join('?' * len(part))})", part)}
            if missing:
                cur.execute("ROLLBACK")
                return [], missing
            for i in range(0, len(blobs), step):
                part = blobs[i:i + step]
                cur.execute(_values_sql("blobs", BLOB_COLUMNS, len(part), " ON CONFLICT (sha256) DO NOTHING"),
                            [b[c] if c != "created_at" else sqlite_timestamp(b[c]) for b in part for c in BLOB_COLUMNS])
            ids: list[int] = []
            for i in range(0, len(inspections), step):
                part = inspections[i:i + step]
                params = [x for k, v in enumerate(part, 1) for x in (
                    k, sqlite_timestamp(v["created_at"]), v["kind"], v["lot"], v["wafer"], v["tool"], v["input_sha256"],
                    v["model_version"], v["predicted"], _json(v["probabilities"]), v["confidence"], _json(v["boxes"]),
                    v["request_id"], v["die_count"], v["fail_count"], v["wafer_yield"], v["decision"],
                    v["unknown_score"], v["pred_set"], v["part_type"])]
                try:
                    cur.execute(_INSERT_INSPECTIONS.format(values=",".join([_ROW] * len(part))), params)
                except sqlite3.IntegrityError as e:  # largest id + k overflowed 64 bits
                    if "datatype mismatch" not in str(e):
                        raise
                    raise RowidsExhausted("inspection ids reached 2**63 - 1") from e
                # row k got id base + k and was inserted last for k = len(part): lastrowid = base + len(part)
                base = int(cur.lastrowid) - len(part)
                ids.extend(range(base + 1, base + len(part) + 1))
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        return ids, set()
