"""The review queue (unknown first, then review, then by ascending confidence; unreviewed; paged and filtered) in
the store and through ``GET /v1/inspections?queue=true``, and migration 0004 on a store made before it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from helpers.service import role_auth
from sqlalchemy import create_engine, inspect, text

from adrcs.serve.store import NewInspection, Store, normalize_url, upgrade

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
# name: (decision, confidence, lot, predicted); None = stored before the trust layer
ROWS = {"sure": ("Center", 0.95, "A", "Center"), "low": ("Center", 0.5, "A", "Center"),
        "rev_hi": ("review", 0.6, "B", "Donut"), "rev_lo": ("review", 0.4, "A", "Center"),
        "unk_hi": ("unknown", 0.9, "B", "none"), "unk_lo": ("unknown", 0.3, "A", "Loc"),
        "old": (None, 0.2, "B", "Scratch"), "done": ("unknown", 0.1, "A", "Loc")}
QUEUE = ["unk_lo", "unk_hi", "rev_lo", "rev_hi", "old", "low"]  # "sure": confident; "done": reviewed


def _fill(store: Store) -> dict[str, int]:
    """The ROWS inspections, an hour apart in ROWS order; "done" reviewed. Name -> id."""
    items = [NewInspection(kind="wafer_map", model_version="v1", predicted=pred, probabilities={pred: conf},
                           confidence=conf, content=name.encode(), media_type="application/x-npy", lot=lot,
                           created_at=T0 + timedelta(hours=i), decision=dec,
                           unknown_score=None if dec is None else 10.0 * conf, pred_set=None if dec is None else pred)
             for i, (name, (dec, conf, lot, pred)) in enumerate(ROWS.items())]
    ids = {name: r.id for name, r in zip(ROWS, store.add_inspections(items))}
    store.add_review(ids["done"], action="confirm", reviewer="eve")
    return ids


def test_store_queue_order_filters_and_paging(store: Store) -> None:
    ids = _fill(store)
    names = {v: k for k, v in ids.items()}

    def queue(**kw) -> list[str]:
        return [names[r.id] for r in store.list_inspections(reviewed=False, needs_review_below=0.7, queue_order=True,
                                                            **kw)]

    assert queue() == QUEUE
    assert store.count_inspections(reviewed=False, needs_review_below=0.7) == len(QUEUE)
    assert queue(limit=2, offset=2) == ["rev_lo", "rev_hi"]
    assert queue(decision="review") == ["rev_lo", "rev_hi"]
    assert queue(decision="Center") == ["low"]
    assert queue(lot="B") == ["unk_hi", "rev_hi", "old"]
    assert queue(predicted="Center") == ["rev_lo", "low"]
    assert queue(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5)) == ["unk_hi", "rev_lo", "rev_hi"]
    # without the queue's membership rule the confident decided one comes last
    everything = [names[r.id] for r in store.list_inspections(reviewed=False, queue_order=True)]
    assert everything == QUEUE + ["sure"]
    rec = store.get_inspection(ids["rev_lo"])
    assert (rec.decision, rec.unknown_score, rec.pred_set) == ("review", pytest.approx(4.0), "Center")
    assert store.get_inspection(ids["old"]).decision is None
    assert store.recent_predictions(2, with_decision=True) == [("Loc", pytest.approx(0.1), "A", "unknown"),
                                                               ("Scratch", pytest.approx(0.2), "B", None)]


def test_queue_route(make_wafer_service) -> None:
    client, tokens, store = make_wafer_service()
    ids = _fill(store)
    names = {v: k for k, v in ids.items()}
    h = role_auth(tokens, "inspector")

    def get(**params) -> dict:
        r = client.get("/v1/inspections", params={"queue": True, **params}, headers=h)
        assert r.status_code == 200, r.text
        return r.json()

    body = get()
    assert [names[i["id"]] for i in body["items"]] == QUEUE and body["total"] == len(QUEUE)
    first = body["items"][0]
    assert (first["decision"], first["set"], first["unknown_score"]) == ("unknown", "Loc", pytest.approx(3.0))
    page = get(limit=2, offset=4)
    assert [names[i["id"]] for i in page["items"]] == ["old", "low"] and page["total"] == len(QUEUE)
    assert [names[i["id"]] for i in get(decision="unknown")["items"]] == ["unk_lo", "unk_hi"]
    assert [names[i["id"]] for i in get(lot="A", cls="Center")["items"]] == ["rev_lo", "low"]
    day = get(since=(T0 + timedelta(hours=3)).isoformat(), until=(T0 + timedelta(hours=6)).isoformat())
    assert [names[i["id"]] for i in day["items"]] == ["unk_lo", "unk_hi", "rev_lo"]
    # the decision filter works without the queue too (newest first), and old params still do
    plain = client.get("/v1/inspections", params={"decision": "unknown"}, headers=h).json()
    assert [names[i["id"]] for i in plain["items"]] == ["done", "unk_lo", "unk_hi"]
    low = client.get("/v1/inspections", params={"reviewed": False, "low_confidence": True}, headers=h).json()
    assert {names[i["id"]] for i in low["items"]} == {"low", "rev_lo", "rev_hi", "unk_lo", "old"}
    # a review takes an inspection out of the queue
    r = client.post(f"/v1/inspections/{ids['unk_lo']}/review", json={"action": "correct", "label": "Scratch"},
                    headers=role_auth(tokens, "engineer"))
    assert r.status_code == 200, r.text
    assert get()["total"] == len(QUEUE) - 1
    bad = client.get("/v1/inspections", params={"queue": True, "reviewed": True}, headers=h)
    assert bad.status_code == 422 and "unreviewed" in bad.json()["detail"]
    assert client.get("/v1/inspections", params={"decision": "x" * 300}, headers=h).status_code == 422


def test_stats_counts_the_queue(make_wafer_service) -> None:
    client, tokens, store = make_wafer_service()
    _fill(store)
    s = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()
    assert s["review_queue"] == len(QUEUE) and s["total"] == len(ROWS)


def test_migration_0004_upgrades_a_0003_store_in_place(db_url: str) -> None:
    """A store at 0003 (made before the trust layer) gets the new columns and index; its rows are kept, with
    no decision, and sit in the queue by confidence."""
    from alembic import command

    from adrcs.serve.store import alembic_config

    engine = create_engine(normalize_url(db_url))
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO blobs (sha256, media_type, size, content, created_at) "
                              "VALUES (:s, 'application/x-npy', 1, :c, :t)"),
                         {"s": "a" * 64, "c": b"x", "t": T0.replace(tzinfo=None)})
            for i, conf in enumerate((0.9, 0.2, 0.5)):
                conn.execute(text(
                    "INSERT INTO inspections (created_at, kind, lot, input_sha256, model_version, predicted, "
                    "probabilities, confidence, die_count) VALUES (:t, 'wafer_map', 'OLD', :s, 'v0', 'Center', "
                    "'{\"Center\": 1.0}', :c, 7)"), {"t": T0.replace(tzinfo=None) + timedelta(minutes=i), "s": "a" * 64,
                                                     "c": conf})
            assert "decision" not in {c["name"] for c in inspect(conn).get_columns("inspections")}
    finally:
        engine.dispose()

    with Store(db_url) as store:  # opening upgrades to head
        old = store.list_inspections(newest_first=False)
        assert [(r.confidence, r.die_count, r.decision, r.unknown_score, r.pred_set) for r in old] == [
            (pytest.approx(0.9), 7, None, None, None), (pytest.approx(0.2), 7, None, None, None),
            (pytest.approx(0.5), 7, None, None, None)]
        [new] = store.add_inspections([NewInspection(kind="wafer_map", model_version="v1", predicted="Donut",
                                                     probabilities={"Donut": 0.8}, confidence=0.8, content=b"n",
                                                     media_type="application/x-npy", decision="unknown",
                                                     unknown_score=12.5, pred_set="Donut;Loc")])
        queue = store.list_inspections(reviewed=False, needs_review_below=0.7, queue_order=True)
        assert [r.id for r in queue] == [new.id, old[1].id, old[2].id]
        assert store.get_inspection(new.id).pred_set == "Donut;Loc"
        with store.engine.connect() as conn:
            indexes = {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("inspections")}
        assert indexes["ix_inspections_decision_confidence"] == ["decision", "confidence"]

    cfg = alembic_config(db_url)  # and back down to 0003 and up again, rows kept
    command.downgrade(cfg, "0003")
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM inspections")).scalar() == 4
            assert "pred_set" not in {c["name"] for c in inspect(conn).get_columns("inspections")}
    finally:
        engine.dispose()
    with Store(db_url) as store:
        assert store.count_inspections() == 4 and store.count_inspections(decision="unknown") == 0
