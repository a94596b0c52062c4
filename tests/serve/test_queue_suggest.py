"""The review queue ranked by label value (``GET /v1/inspections?order=suggest``, `serve/queue_suggest.py`): only
pending queue items, least sure first then diverse, paged as one ranking, bounded pool, bad ``order`` refused,
``queue=true`` unchanged; and the gradient embeddings of single-label, multi-label and detector rows."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from helpers.service import role_auth

from adrcs.inference.suggest import uncertainty_scores
from adrcs.serve import queue_suggest
from adrcs.serve.store import NewInspection, Store

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)
# name: (decision, probabilities); the service's queue threshold is 0.7 (confidence = the top probability)
ROWS = {
    "twin": ("review", {"A": 0.34, "B": 0.33, "C": 0.33}),   # the same answer as "tie", older
    "half": ("review", {"A": 0.5, "B": 0.3, "C": 0.2}),
    "low_c": ("C", {"A": 0.4, "B": 0.0, "C": 0.6}),          # in the queue by its confidence
    "unk": ("unknown", {"A": 0.99, "B": 0.01, "C": 0.0}),    # an unknown pattern that looks sure
    "near_b": ("review", {"A": 0.45, "B": 0.55, "C": 0.0}),
    "sure": ("A", {"A": 0.95, "B": 0.05, "C": 0.0}),         # decided and confident: not in the queue
    "done": ("review", {"A": 0.34, "B": 0.33, "C": 0.33}),   # reviewed: not in the queue
    "tie": ("review", {"A": 0.34, "B": 0.33, "C": 0.33}),    # the least sure answer, newest
}
PENDING = {"twin", "half", "low_c", "unk", "near_b", "tie"}


def _fill(store: Store) -> dict[str, int]:
    items = [NewInspection(kind="wafer_map", model_version="v1", predicted=max(p, key=p.get), probabilities=p,
                           confidence=max(p.values()), content=name.encode(), media_type="application/x-npy",
                           lot="L1", created_at=T0 + timedelta(minutes=i), decision=dec, unknown_score=1.0,
                           pred_set=max(p, key=p.get))
             for i, (name, (dec, p)) in enumerate(ROWS.items())]
    ids = {name: r.id for name, r in zip(ROWS, store.add_inspections(items))}
    store.add_review(ids["done"], action="confirm", reviewer="eve")
    return ids


@pytest.fixture
def service(make_wafer_service):
    client, tokens, store = make_wafer_service()
    ids = _fill(store)
    names = {v: k for k, v in ids.items()}
    h = role_auth(tokens, "inspector")

    def get(expect: int = 200, **params):
        r = client.get("/v1/inspections", params=params, headers=h)
        assert r.status_code == expect, r.text
        return r.json()

    return get, names, ids, client, tokens


def test_suggest_ranks_the_pending_queue(service) -> None:
    get, names, ids, client, tokens = service
    body = get(order="suggest")
    order = [names[i["id"]] for i in body["items"]]
    assert set(order) == PENDING and len(order) == len(PENDING)
    assert body["total"] == body["ranked"] == len(PENDING)
    assert [i["suggest_rank"] for i in body["items"]] == list(range(1, len(PENDING) + 1))
    # rank 1: the least sure answer (the longest gradient ||p - onehot||; the newest of two equal ones), and it
    # is also the least sure by margin
    first = body["items"][0]
    assert order[0] == "tie" and first["suggest_score"] == pytest.approx(math.sqrt(0.66**2 + 2 * 0.33**2), abs=1e-5)
    probs = np.array([[ROWS[n][1][c] for c in "ABC"] for n in order])
    assert int(np.argmax(uncertainty_scores(probs))) == 0
    # its twin adds nothing once "tie" is ranked: last, score 0; scores fall along the ranking
    assert order[-1] == "twin" and body["items"][-1]["suggest_score"] == pytest.approx(0.0, abs=1e-6)
    scores = [i["suggest_score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    # the same with queue=true and with the queue's filters; reviewed=true is refused as for the queue
    assert [i["id"] for i in get(order="suggest", queue=True)["items"]] == [i["id"] for i in body["items"]]
    only_review = get(order="suggest", decision="review")
    assert [names[i["id"]] for i in only_review["items"]] == [n for n in order if ROWS[n][0] == "review"]
    assert "unreviewed" in get(422, order="suggest", reviewed=True)["detail"]
    # a review takes an inspection out of the ranking
    r = client.post(f"/v1/inspections/{ids['tie']}/review", json={"action": "correct", "label": "B"},
                    headers=role_auth(tokens, "engineer"))
    assert r.status_code == 200, r.text
    assert [names[i["id"]] for i in get(order="suggest")["items"]][0] == "twin"  # now alone with that answer


def test_suggest_pages_are_slices_of_one_ranking(service, monkeypatch) -> None:
    get, names, *_ = service
    full = [i["id"] for i in get(order="suggest")["items"]]
    pages = [get(order="suggest", limit=2, offset=o) for o in (0, 2, 4)]
    assert [i["id"] for p in pages for i in p["items"]] == full
    assert [i["suggest_rank"] for i in pages[1]["items"]] == [3, 4]
    assert get(order="suggest", offset=len(full))["items"] == []
    # the pool is bounded: only the newest SUGGEST_POOL pending rows are ranked, total counts the whole queue
    monkeypatch.setattr(queue_suggest, "SUGGEST_POOL", 3)
    small = get(order="suggest")
    assert (small["total"], small["ranked"], len(small["items"])) == (len(PENDING), 3, 3)
    assert {names[i["id"]] for i in small["items"]} == {"tie", "near_b", "unk"}
    assert get(order="suggest", offset=3)["items"] == []


def test_orders_and_bad_order(service) -> None:
    get, names, *_ = service
    queue = [names[i["id"]] for i in get(queue=True)["items"]]  # today's queue order, unchanged
    assert queue == ["unk", "twin", "tie", "half", "near_b", "low_c"]
    assert [names[i["id"]] for i in get(queue=True, order="queue")["items"]] == queue
    assert "suggest_rank" not in get(queue=True)["items"][0] and "ranked" not in get(queue=True)
    newest = [names[i["id"]] for i in get(queue=True, order="newest")["items"]]
    assert newest == [n for n in reversed(ROWS) if n in PENDING]
    assert [names[i["id"]] for i in get()["items"]] == list(reversed(ROWS))  # no queue: newest first, as before
    assert [names[i["id"]] for i in get(order="queue")["items"]][:3] == ["unk", "twin", "done"]  # the order alone
    bad = get(422, order="best")
    assert bad["detail"] == "order must be one of queue, suggest, newest (got 'best')"


def test_gradient_embeddings_of_each_kind_of_answer() -> None:
    a = queue_suggest.gradient_embeddings(
        [{"A": 0.7, "B": 0.3}, {"B": 0.6, "C": 0.45}, {}, {"A": float("nan"), "B": 1.0}],
        [False, True, False, False])
    # columns A, B, C; single-label: p - onehot(top); multi-label: p - (p >= 0.5); empty / NaN: zeros
    assert a == pytest.approx(np.array([[-0.3, 0.3, 0], [0, -0.4, 0.45], [0, 0, 0], [0, 0, 0]]))
    idx, score = queue_suggest.rank(a, 2)
    assert list(idx) == [1, 0] and score[0] == pytest.approx(math.hypot(0.4, 0.45))
    assert len(queue_suggest.rank(a[:0], 5)[0]) == 0

    class Row:  # a detector's answer reads as independent labels
        def __init__(self, predicted: str, kind: str, boxes) -> None:
            self.predicted, self.kind, self.boxes = predicted, kind, boxes

    assert [queue_suggest.is_multilabel(r) for r in (Row("A", "wafer_map", None), Row('["A"]', "wafer_map", None),
                                                     Row("dent", "image", []), Row("dent", "image", None))] == [
        False, True, True, False]


def test_store_pool_and_records_by_id(store: Store) -> None:
    ids = _fill(store)
    pool = store.queue_candidates(reviewed=False, needs_review_below=0.7, limit=4)
    assert [r.id for r in pool] == [ids[n] for n in ("tie", "near_b", "unk", "low_c")]  # newest first
    assert pool[0].probabilities == ROWS["tie"][1] and pool[0].kind == "wafer_map" and pool[0].boxes is None
    recs = store.inspections_by_id([ids["done"], 10**6, ids["half"]])
    assert [r.id for r in recs] == [ids["done"], ids["half"]] and len(recs[0].reviews) == 1
    assert store.inspections_by_id([]) == []
