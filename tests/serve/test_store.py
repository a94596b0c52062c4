"""Results store on SQLite and PostgreSQL: migrations, blobs, inspections, reviews, registry, tokens."""
from __future__ import annotations

import hashlib
import re
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from adrcs.serve.store import (ROLES, NewInspection, NotFound, Store, decode_labels, encode_labels, normalize_url,
                               role_allows)
from adrcs.serve.store.schema import ApiTokenRow, Base, BlobRow

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
TABLES = {"blobs", "inspections", "reviews", "model_versions", "model_events", "api_tokens", "defect_classes",
          "retrain_jobs", "rate_counters",
          "alembic_version"}


def new(predicted: str = "Center", confidence: float = 0.9, *, content: bytes | None = b"map", lot: str | None = "L1",
        at: datetime | None = None, **kw) -> NewInspection:
    probs = {predicted: confidence, "none": round(1 - confidence, 6)}
    return NewInspection(kind=kw.pop("kind", "wafer_map"), model_version=kw.pop("model_version", "v1"),
                         predicted=predicted, probabilities=probs, confidence=confidence, content=content,
                         media_type=kw.pop("media_type", "application/x-npy" if content is not None else None),
                         lot=lot, created_at=at, **kw)


def test_migrations_create_tables_and_rerun(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Store(db_url).close()
    with Store(db_url) as store:  # second run on a migrated database: no-op
        assert store.ping()
    engine = create_engine(normalize_url(db_url))
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0006"]
            # the migrations build exactly the ORM schema
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    finally:
        engine.dispose()


def test_blob_dedupe(store: Store) -> None:
    sha = store.put_blob(b"\x00png-bytes", "image/png")
    assert sha == hashlib.sha256(b"\x00png-bytes").hexdigest()
    assert store.put_blob(b"\x00png-bytes", "image/png") == sha
    store.add_inspections([new(content=b"\x00png-bytes", media_type="image/png", kind="image"),
                           new(content=b"\x00png-bytes", media_type="image/png", kind="image")])
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(BlobRow)).scalar() == 1
    assert store.get_blob(sha) == (b"\x00png-bytes", "image/png")
    assert store.get_blob("0" * 64) is None


def test_add_get_inspection_roundtrip(store: Store) -> None:
    boxes = [{"class": "scratch", "score": np.float32(0.75), "x1": 1, "y1": 2, "x2": 30, "y2": 40}]
    [rec] = store.add_inspections([new("Donut", 0.8, lot="L7", wafer="W3", tool="T1", boxes=boxes, request_id="r-1",
                                       at=T0)])
    got = store.get_inspection(rec.id)
    assert got == rec
    assert got.created_at == T0 and got.created_at.tzinfo is not None
    assert (got.kind, got.lot, got.wafer, got.tool, got.request_id) == ("wafer_map", "L7", "W3", "T1", "r-1")
    assert got.probabilities == {"Donut": 0.8, "none": 0.2} and got.confidence == pytest.approx(0.8)
    assert got.boxes == [{"class": "scratch", "score": 0.75, "x1": 1, "y1": 2, "x2": 30, "y2": 40}]
    assert got.reviews == () and got.effective_label is None and got.label == "Donut"
    assert got.to_dict()["created_at"] == T0.isoformat()
    assert store.get_inspection(10_000) is None
    # a default timestamp is "now", UTC
    [now_rec] = store.add_inspections([new()])
    assert abs(now_rec.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_add_inspections_by_sha_and_atomicity(store: Store) -> None:
    sha = store.put_blob(b"stored", "application/x-npy")
    [rec] = store.add_inspections([new(content=None, input_sha256=sha)])
    assert rec.input_sha256 == sha
    with pytest.raises(NotFound):  # unknown blob: the whole batch is refused
        store.add_inspections([new(content=b"other"), new(content=None, input_sha256="f" * 64)])
    assert store.count_inspections() == 1 and store.get_blob(hashlib.sha256(b"other").hexdigest()) is None
    with pytest.raises(ValueError):
        store.add_inspections([new(kind="sound")])
    with pytest.raises(ValueError):
        store.add_inspections([new(content=b"x", input_sha256="0" * 64)])
    assert store.add_inspections([]) == []


def _populate(store: Store) -> list:
    day = timedelta(days=1)
    recs = store.add_inspections([
        new("Center", 0.95, lot="A", at=T0),
        new("Donut", 0.40, lot="A", at=T0 + timedelta(hours=1)),
        new("Center", 0.55, lot="B", at=T0 + day),
        new("Scratch", 0.99, lot="B", at=T0 + day + timedelta(hours=2)),
        new("Center", 0.30, lot=None, at=T0 + 2 * day),
    ])
    store.add_review(recs[1].id, action="correct", label="Center", reviewer="alice")
    store.add_review(recs[4].id, action="confirm", label="Center", reviewer="bob")
    return recs


def test_list_and_count_filters(store: Store) -> None:
    r = _populate(store)
    ids = lambda items: [i.id for i in items]  # noqa: E731
    assert ids(store.list_inspections()) == [r[4].id, r[3].id, r[2].id, r[1].id, r[0].id]
    assert ids(store.list_inspections(newest_first=False)) == [x.id for x in r]
    assert ids(store.list_inspections(lot="A")) == [r[1].id, r[0].id]
    assert ids(store.list_inspections(predicted="Center")) == [r[4].id, r[2].id, r[0].id]
    window = {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(days=1, hours=2)}  # since incl., until excl.
    assert ids(store.list_inspections(**window)) == [r[2].id, r[1].id]
    assert ids(store.list_inspections(since=(T0 + timedelta(days=1)).astimezone(timezone(timedelta(hours=-5))))) \
        == [r[4].id, r[3].id, r[2].id]  # other time zones compare as UTC
    assert ids(store.list_inspections(reviewed=True)) == [r[4].id, r[1].id]
    assert ids(store.list_inspections(reviewed=False)) == [r[3].id, r[2].id, r[0].id]
    assert ids(store.list_inspections(max_confidence=0.55)) == [r[4].id, r[2].id, r[1].id]
    assert ids(store.list_inspections(predicted="Center", max_confidence=0.6, reviewed=False)) == [r[2].id]
    assert ids(store.list_inspections(limit=2)) == [r[4].id, r[3].id]
    assert ids(store.list_inspections(limit=2, offset=2)) == [r[2].id, r[1].id]
    assert store.list_inspections(offset=10) == []
    assert store.count_inspections() == 5
    assert store.count_inspections(lot="B") == 2
    assert store.count_inspections(reviewed=True) == 2 and store.count_inspections(reviewed=False) == 3
    assert store.count_inspections(**window) == 2
    assert store.count_inspections(predicted="Center", max_confidence=0.6) == 2
    listed = {i.id: i for i in store.list_inspections()}
    assert listed[r[1].id].effective_label == "Center" and listed[r[3].id].effective_label is None


def test_reviews_append_only(store: Store) -> None:
    [rec] = store.add_inspections([new("Donut", 0.6)])
    first = store.add_review(rec.id, action="correct", label="Center", reviewer="alice", note="ring is faint")
    second = store.add_review(rec.id, action="correct", label="Edge-Ring", reviewer="bob")
    got = store.get_inspection(rec.id)
    assert [v.id for v in got.reviews] == [first.id, second.id]
    assert [(v.label, v.reviewer, v.note) for v in got.reviews] == [("Center", "alice", "ring is faint"),
                                                                     ("Edge-Ring", "bob", None)]
    assert got.effective_label == "Edge-Ring" and got.label == "Edge-Ring"
    assert got.predicted == "Donut" and got.probabilities == rec.probabilities  # prediction untouched
    confirm = store.add_review(rec.id, action="confirm", reviewer="carol")  # label defaults to the prediction
    assert confirm.label == "Donut" and store.get_inspection(rec.id).effective_label == "Donut"


def test_review_errors(store: Store) -> None:
    [rec] = store.add_inspections([new()])
    with pytest.raises(KeyError):
        store.add_review(999_999, action="confirm", label="Center", reviewer="alice")
    with pytest.raises(ValueError):
        store.add_review(rec.id, action="delete", label="Center", reviewer="alice")
    with pytest.raises(ValueError):
        store.add_review(rec.id, action="correct", label="", reviewer="alice")
    assert store.get_inspection(rec.id).reviews == ()


def test_reviewed_inspections(store: Store) -> None:
    r = _populate(store)
    got = store.reviewed_inspections()
    assert [i.id for i in got] == [r[1].id, r[4].id]
    assert [i.effective_label for i in got] == ["Center", "Center"]
    assert [i.id for i in store.reviewed_inspections(since_id=r[1].id)] == [r[4].id]


def test_class_counts(store: Store) -> None:
    _populate(store)
    assert store.class_counts(by="lot") == [
        {"lot": None, "predicted": "Center", "count": 1},
        {"lot": "A", "predicted": "Center", "count": 1},
        {"lot": "A", "predicted": "Donut", "count": 1},
        {"lot": "B", "predicted": "Center", "count": 1},
        {"lot": "B", "predicted": "Scratch", "count": 1},
    ]
    assert store.class_counts(by="day") == [
        {"day": "2026-03-01", "predicted": "Center", "count": 1},
        {"day": "2026-03-01", "predicted": "Donut", "count": 1},
        {"day": "2026-03-02", "predicted": "Center", "count": 1},
        {"day": "2026-03-02", "predicted": "Scratch", "count": 1},
        {"day": "2026-03-03", "predicted": "Center", "count": 1},
    ]
    assert store.class_counts(by="day", since=T0 + timedelta(days=1, hours=1)) == [
        {"day": "2026-03-02", "predicted": "Scratch", "count": 1},
        {"day": "2026-03-03", "predicted": "Center", "count": 1},
    ]
    with pytest.raises(ValueError):
        store.class_counts(by="tool")


def test_recent_predictions(store: Store) -> None:
    _populate(store)
    assert store.recent_predictions(3) == [("Center", pytest.approx(0.30), None), ("Scratch", pytest.approx(0.99), "B"),
                                           ("Center", pytest.approx(0.55), "B")]
    assert len(store.recent_predictions(100)) == 5 and store.recent_predictions(0) == []


def test_model_registry(store: Store) -> None:
    a = store.register_model("wafer-a", kind="wafer", path="runs/a", metrics={"macro_f1": np.float64(0.9)})
    assert (a.status, a.metrics) == ("candidate", {"macro_f1": 0.9})
    store.register_model("wafer-b", kind="wafer", path="runs/b", metrics={"macro_f1": 0.93}, parent="wafer-a")
    store.register_model("det-a", kind="detect", path="runs/d", metrics={})
    with pytest.raises(ValueError):
        store.register_model("wafer-a", kind="wafer", path="x", metrics={})
    with pytest.raises(ValueError):
        store.register_model("x", kind="audio", path="x", metrics={})
    assert store.champion() is None and store.champion("wafer") is None
    with pytest.raises(ValueError):
        store.rollback(actor="eve", kind="wafer")  # no champion at all

    assert store.promote("wafer-a", actor="alice").status == "champion"
    assert store.champion("wafer").version == "wafer-a"
    with pytest.raises(ValueError):
        store.rollback(actor="eve", kind="wafer")  # no previous champion
    with pytest.raises(ValueError):
        store.promote("wafer-a", actor="alice")  # already champion
    with pytest.raises(KeyError):
        store.promote("nope", actor="alice")

    store.promote("wafer-b", actor="alice")
    status = {m.version: m.status for m in store.list_models()}
    assert status == {"wafer-a": "retired", "wafer-b": "champion", "det-a": "candidate"}
    store.promote("det-a", actor="bob")  # another kind: wafer champion untouched
    assert store.champion("wafer").version == "wafer-b" and store.champion().version == "det-a"

    back = store.rollback(actor="carol", kind="wafer")
    assert back.version == "wafer-a" and back.status == "champion"
    assert store.get_model("wafer-b").status == "retired" and store.champion("detect").version == "det-a"
    with pytest.raises(ValueError):
        store.rollback(actor="carol", kind="wafer")  # wafer-a had no predecessor

    store.log_model_event("wafer-c", "reject", "champion-challenger", {"macro_f1": 0.8, "champion_f1": 0.9})
    with pytest.raises(ValueError):
        store.log_model_event("wafer-a", "promote", "mallory", {})
    events = [(e["version"], e["action"], e["actor"]) for e in store.model_events()]
    assert events == [("wafer-a", "register", "system"), ("wafer-b", "register", "system"),
                      ("det-a", "register", "system"), ("wafer-a", "promote", "alice"),
                      ("wafer-b", "promote", "alice"), ("det-a", "promote", "bob"),
                      ("wafer-a", "rollback", "carol"), ("wafer-c", "reject", "champion-challenger")]
    assert store.model_events("wafer-b")[1]["detail"] == {"kind": "wafer", "previous": "wafer-a"}
    assert store.model_events()[-2]["detail"] == {"kind": "wafer", "from": "wafer-b"}


def test_rollback_walks_back_the_history(store: Store) -> None:
    for v in "abc":
        store.register_model(v, kind="image_classify", path=v, metrics={})
        store.promote(v, actor="x")
    assert store.rollback(actor="x").version == "b"
    store.promote("c", actor="x")  # re-promote after a rollback
    assert store.rollback(actor="x", kind="image_classify").version == "b"
    assert store.rollback(actor="x").version == "a"
    assert [m.status for m in store.list_models()] == ["champion", "retired", "retired"]


def test_tokens(store: Store) -> None:
    token = store.create_token("alice", "engineer")
    assert isinstance(token, str) and len(token) >= 40
    with store.engine.connect() as conn:
        rows = conn.execute(select(ApiTokenRow.name, ApiTokenRow.role, ApiTokenRow.token_hash)).all()
    assert [tuple(r) for r in rows] == [("alice", "engineer", hashlib.sha256(token.encode()).hexdigest())]
    assert all(token not in str(v) for r in rows for v in r)  # never stored in plaintext
    assert store.check_token(token) == ("alice", "engineer")
    assert store.check_token(token + "x") is None and store.check_token("") is None
    other = store.create_token("bob", "inspector")
    with pytest.raises(ValueError):
        store.create_token("alice", "admin")  # duplicate name
    with pytest.raises(ValueError):
        store.create_token("carol", "root")
    store.revoke_token("alice")
    assert store.check_token(token) is None and store.check_token(other) == ("bob", "inspector")
    with pytest.raises(KeyError):
        store.revoke_token("nobody")
    assert [(t.name, t.revoked) for t in store.list_tokens()] == [("alice", True), ("bob", False)]


def test_concurrent_writers(store: Store, db_url: str) -> None:
    n_threads, per_thread = 8, 10
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):  # shared content too: blob inserts race on the same key
                recs = store.add_inspections([new(content=f"t{t}-{i}".encode(), lot=f"T{t}"),
                                              new(content=b"shared", lot=None)])
                if i % 3 == 0:
                    store.add_review(recs[0].id, action="confirm", reviewer=f"r{t}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.count_inspections() == 2 * n_threads * per_thread
    with Store(db_url) as again:  # committed: visible from a fresh engine
        assert again.count_inspections(lot="T3") == per_thread
        assert again.count_inspections(reviewed=True) == n_threads * len(range(0, per_thread, 3))
        assert again.get_blob(hashlib.sha256(b"shared").hexdigest()) == (b"shared", "application/x-npy")


def test_sqlite_settings_and_relative_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store("sqlite:///data/sub/adrcs.db") as store:
        assert (tmp_path / "data" / "sub" / "adrcs.db").exists()
        with store.engine.connect() as conn:
            pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                       ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
        assert pragmas == ["wal", 2, 1, 30000]  # synchronous 2 = FULL


def _raw_rows(path, table: str) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def test_sqlite_fast_writer_stores_what_the_orm_path_stores(tmp_path) -> None:
    boxes = [{"class": "scratch", "score": np.float32(0.5), "x1": 1, "y1": 2, "x2": 3, "y2": 4}]
    items = lambda: [new("Donut", 0.8, lot="L7", wafer="W3", tool="T1", boxes=boxes, request_id="r-1", at=T0,  # noqa: E731
                         decision="review", unknown_score=np.float32(2.5), pred_set="Donut;none"),
                     new("Center", 0.6, content=b"other", lot=None, at=T0 + timedelta(seconds=1),
                         decision="unknown", unknown_score=float("nan"), pred_set=""),  # NaN score: stored None
                     new("Center", 0.7, at=datetime(2026, 3, 1, 9, 0))]  # naive: taken as UTC; same blob as the first
    with Store(f"sqlite:///{tmp_path / 'fast.db'}") as fast, Store(f"sqlite:///{tmp_path / 'orm.db'}") as orm:
        assert fast._fast_writer is not None
        orm._fast_writer = None  # the SQLAlchemy path
        for store in (fast, orm):
            store.add_inspections([new(content=b"first", at=T0 - timedelta(days=1))])
            recs = store.add_inspections(items())
            assert [r.id for r in recs] == [2, 3, 4]
            assert [store.get_inspection(r.id) for r in recs] == recs
            assert [(r.decision, r.unknown_score, r.pred_set) for r in recs] == [
                ("review", 2.5, "Donut;none"), ("unknown", None, ""), (None, None, None)]
        assert _raw_rows(tmp_path / "fast.db", "inspections") == _raw_rows(tmp_path / "orm.db", "inspections")
        fast_blobs, orm_blobs = _raw_rows(tmp_path / "fast.db", "blobs"), _raw_rows(tmp_path / "orm.db", "blobs")
        assert [b[:-1] for b in fast_blobs] == [b[:-1] for b in orm_blobs]  # created_at is "now": same format
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", b[-1]) for b in fast_blobs + orm_blobs)
        # a batch larger than one statement, ids in input order
        many = fast.add_inspections([new(content=str(i).encode(), lot=f"L{i}") for i in range(1203)])
        assert [r.id for r in many] == list(range(5, 5 + 1203))
        assert [fast.get_inspection(r.id).lot for r in many[::97]] == [f"L{i}" for i in range(0, 1203, 97)]


def test_sqlite_fast_writer_refuses_missing_blob_and_leaves_rowid_edge_to_the_orm(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    with Store(f"sqlite:///{path}") as store:
        with pytest.raises(NotFound):
            store.add_inspections([new(content=b"ok"), new(content=None, input_sha256="e" * 64)])
        assert store.count_inspections() == 0
        [first] = store.add_inspections([new(content=b"ok")])
        with sqlite3.connect(path) as conn:  # an id near the largest rowid: SQLite may pick random rowids next
            conn.execute("INSERT INTO inspections SELECT ?, created_at, kind, lot, wafer, tool, input_sha256, "
                         "model_version, predicted, probabilities, confidence, boxes, request_id, die_count, fail_count, "
                         "wafer_yield, decision, unknown_score, pred_set, part_type FROM inspections "
                         "WHERE id = ?", (2**63 - 4, first.id))
        recs = store.add_inspections([new(content=b"ok", lot=f"E{i}") for i in range(5)])
        assert store._fast_writer is None  # switched to the ORM path for good
        assert [store.get_inspection(r.id).lot for r in recs] == [f"E{i}" for i in range(5)]
        assert len({r.id for r in recs}) == 5 and store.count_inspections() == 7


def test_helpers() -> None:
    assert normalize_url("postgresql://u:p@h:5432/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    assert encode_labels(["Scratch", "Center", "Center"]) == '["Center","Scratch"]'
    assert decode_labels('["Center","Scratch"]') == ["Center", "Scratch"] and decode_labels("Donut") == ["Donut"]
    assert ROLES == ("inspector", "engineer", "admin")
    assert role_allows("admin", "engineer") and role_allows("engineer", "engineer")
    assert not role_allows("inspector", "engineer") and not role_allows("guest", "inspector")


def test_registered_classes(store: Store) -> None:
    cls, created = store.add_class(" Wavy ", "wafer", actor="admin")
    assert created and (cls.name, cls.kind, cls.actor) == ("Wavy", "wafer", "admin")
    again, created = store.add_class("Wavy", "wafer", actor="other")
    assert not created and again.actor == "admin"
    store.add_class("Wavy", "detect", actor="admin")  # same name, another kind
    store.add_class("Crack", "wafer", actor="admin")
    assert [c.name for c in store.list_classes("wafer")] == ["Wavy", "Crack"]
    assert [(c.name, c.kind) for c in store.list_classes()] == [("Wavy", "wafer"), ("Wavy", "detect"),
                                                                 ("Crack", "wafer")]
    for name, kind in (("", "wafer"), ("[x]", "wafer"), ("a\x00b", "wafer"), ("x" * 101, "wafer"), ("Ok", "audio"),
                       (None, "wafer")):
        with pytest.raises(ValueError):
            store.add_class(name, kind, actor="admin")


def test_ids_and_offsets_out_of_range(store: Store) -> None:
    [rec] = store.add_inspections([new()])
    for bad in (0, -1, store.max_id + 1, 2**63, 2**64, 10**30):
        assert store.get_inspection(bad) is None
        with pytest.raises(NotFound):
            store.add_review(bad, action="confirm", reviewer="r")
    assert store.get_inspection(rec.id).id == rec.id
    assert store.list_inspections(offset=2**63 - 1) == [] and store.list_inspections(offset=10**30) == []
    assert len(store.list_inspections(limit=10**30)) == 1


def test_writability_probe(store: Store, db_url: str) -> None:
    assert store.check_writable() is None
    store.add_inspections([new()])  # the probe left nothing behind and holds no lock
    assert store.count_inspections() == 1


def test_concurrent_promotes_leave_one_champion(store: Store) -> None:
    for v in ("a", "b", "c"):
        store.register_model(v, kind="wafer", path=v, metrics={})
    store.promote("a", actor="x")
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(v: str) -> None:
        try:
            start.wait()
            store.promote(v, actor="x")
        except ValueError:
            pass  # already the champion: the service answers that as an idempotent 200
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(v,)) for v in "bcbcbc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m.status for m in store.list_models()].count("champion") == 1
