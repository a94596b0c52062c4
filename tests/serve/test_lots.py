"""``GET /v1/lots/{lot}`` (a lot's wafer-map inspections and summary) and ``GET /v1/lots/{lot}/stacked.png``: numbers,
id normalisation, paging, 404 / 422 / auth, the stacked failure-rate picture; the store queries on both backends."""
from __future__ import annotations

import io

import numpy as np
import pytest
from helpers.runs import small_maps
from helpers.service import assert_clean_error, role_auth

from adrcs.report.wafer_render import rate_rgb, stacked_rate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def inspect(client, tokens, maps: list, lot: str, wafers: list) -> list[dict]:
    r = client.post("/v1/inspect/wafer-maps", json={"maps": maps, "lot": lot, "wafer": wafers},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.fixture
def lot_service(make_wafer_service, fast_path):
    """(client, tokens, store, results of lot 0042, maps of lot 0042) on a service with 5 wafers of lot 0042 (two
    sizes) and 2 of lot B."""
    client, tokens, store = make_wafer_service(fast_path=fast_path, low_confidence=0.5)
    maps = small_maps(3, seed=1) + small_maps(2, side=24, seed=2)
    res = inspect(client, tokens, maps[:3], "0042", ["01", "02", "03"])
    res += inspect(client, tokens, maps[3:], "42", ["04", "05"])  # the same lot once normalised
    inspect(client, tokens, small_maps(2, seed=3), "B", ["1", "2"])
    return client, tokens, store, res, maps


def test_lot_lists_its_wafers_with_a_summary(lot_service):
    client, tokens, store, res, maps = lot_service
    h = role_auth(tokens, "inspector")
    r = client.get("/v1/lots/0042", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lot"] == "42" and body["total"] == 5 and body["offset"] == 0
    assert [w["id"] for w in body["wafers"]] == [x["id"] for x in res]  # oldest first
    assert [w["wafer"] for w in body["wafers"]] == ["1", "2", "3", "4", "5"]
    for w, x in zip(body["wafers"], res):
        assert w["predicted"] == w["label"] == x["class"] and not w["reviewed"]
        assert w["confidence"] == pytest.approx(x["confidence"]) and w["yield"] == pytest.approx(x["yield"])
        assert (w["die_count"], w["fail_count"]) == (x["die_count"], x["fail_count"])
    s = body["summary"]
    assert s["wafers"] == 5 and s["distinct_wafers"] == 5 and s["low_confidence"] == 0.5
    assert s["yield_mean"] == pytest.approx(np.mean([x["yield"] for x in res]), abs=1e-6)
    counts: dict[str, int] = {}
    for x in res:
        counts[x["class"]] = counts.get(x["class"], 0) + 1
    assert s["pattern_counts"] == counts
    assert s["flagged"] == sum(x["confidence"] <= 0.5 for x in res) and s["reviewed"] == 0
    # a review shows; every spelling of the id finds the lot; pages
    client.post(f"/v1/inspections/{res[1]['id']}/review", json={"action": "correct", "label": "Donut"},
                headers=role_auth(tokens, "engineer"))
    page = client.get("/v1/lots/%2742%27", params={"limit": 2, "offset": 1}, headers=h).json()
    assert [w["id"] for w in page["wafers"]] == [res[1]["id"], res[2]["id"]] and page["total"] == 5
    assert page["wafers"][0]["reviewed"] and page["wafers"][0]["label"] == "Donut"
    assert page["summary"]["reviewed"] == 1
    assert client.get("/v1/lots/B", headers=h).json()["total"] == 2
    # a lot id with a slash, sent as %2F
    inspect(client, tokens, small_maps(1), "FAB1/LOT 9", ["1"])
    assert client.get("/v1/lots/FAB1%2FLOT%209", headers=h).json()["lot"] == "FAB1/LOT 9"
    assert client.get("/v1/lots/FAB1%2FLOT%209/stacked.png", headers=h).headers["x-wafer-maps"] == "1"


def test_lot_errors_and_auth(lot_service):
    client, tokens, store, res, maps = lot_service
    h = role_auth(tokens, "inspector")
    body = assert_clean_error(client.get("/v1/lots/NOPE", headers=h), 404)
    assert "NOPE" in body["detail"]
    assert_clean_error(client.get("/v1/lots/NOPE/stacked.png", headers=h), 404)
    for bad in ("x" * 201, "A%01B", "%20%27%27%20"):  # too long, not printable, nothing left once trimmed
        assert_clean_error(client.get(f"/v1/lots/{bad}", headers=h), 422)
        assert_clean_error(client.get(f"/v1/lots/{bad}/stacked.png", headers=h), 422)
    for params in ({"limit": 0}, {"limit": 5001}, {"offset": -1}):
        assert_clean_error(client.get("/v1/lots/42", params=params, headers=h), 422)
    for path in ("/v1/lots/42", "/v1/lots/42/stacked.png"):
        assert_clean_error(client.get(path), 401)
        assert_clean_error(client.get(path, headers={"Authorization": "Bearer wrong"}), 401)
        assert client.get(path, headers=role_auth(tokens, "engineer")).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"LotOut", "LotWafer", "LotSummary"} <= set(spec["components"]["schemas"])
    ok = spec["paths"]["/v1/lots/{lot}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/LotOut")
    assert "image/png" in spec["paths"]["/v1/lots/{lot}/stacked.png"]["get"]["responses"]["200"]["content"]


def test_stacked_png_is_the_lot_failure_rate(lot_service):
    from PIL import Image

    client, tokens, store, res, maps = lot_service
    r = client.get("/v1/lots/42/stacked.png", headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-wafer-maps"] == r.headers["x-wafer-maps-total"] == "5"
    got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    want = rate_rgb(stacked_rate([np.asarray(m, np.uint8) for m in maps]))
    assert got.shape == want.shape and np.array_equal(got, want)
    # the same map inspected again is stacked once
    inspect(client, tokens, maps[:1], "42", ["01"])
    r = client.get("/v1/lots/42/stacked.png", headers=role_auth(tokens, "inspector"))
    assert r.headers["x-wafer-maps"] == "5"
    assert client.get("/v1/lots/42", headers=role_auth(tokens, "inspector")).json()["summary"]["wafers"] == 6


def test_store_lot_queries(store):
    """`Store.lot_summary` and `Store.lot_maps` on SQLite and PostgreSQL."""
    from adrcs.data.map_blob import encode_map
    from adrcs.serve.store import NewInspection

    def new(content: bytes, predicted: str, conf: float, wafer: str, y: float | None, kind: str = "wafer_map"):
        return NewInspection(kind=kind, model_version="v1", predicted=predicted, probabilities={predicted: conf},
                             confidence=conf, content=content, media_type="application/x-npy", lot="L1", wafer=wafer,
                             die_count=10, fail_count=2, wafer_yield=y)

    blobs = [encode_map(np.full((3, 3), i % 3, np.uint8)) for i in range(4)]
    recs = store.add_inspections([new(blobs[0], "Center", 0.9, "1", 0.8), new(blobs[1], "Donut", 0.4, "2", 0.6),
                                  new(blobs[1], "Donut", 0.7, "2", None), new(blobs[2], "Center", 0.3, "3", 1.0),
                                  new(b"png", "Center", 0.1, "9", None, kind="image")])
    store.add_review(recs[0].id, action="confirm", reviewer="eve")
    store.add_review(recs[0].id, action="correct", label="Donut", reviewer="eve")
    s = store.lot_summary("L1", 0.5)
    assert s == {"wafers": 4, "distinct_wafers": 3, "yield_mean": pytest.approx(0.8), "pattern_counts":
                 {"Center": 2, "Donut": 2}, "flagged": 2, "reviewed": 1}
    assert store.lot_summary("nope", 0.5)["wafers"] == 0 and store.lot_summary("nope", 0.5)["yield_mean"] is None
    got, total = store.lot_maps("L1", 500, 1 << 20)
    assert total == 3 and got == [blobs[2], blobs[1], blobs[0]]  # newest first, each map once, no image
    assert store.lot_maps("L1", 2, 1 << 20) == ([blobs[2], blobs[1]], 3)
    assert store.lot_maps("L1", 500, len(blobs[0]) + 1) == ([blobs[2]], 3)  # byte cap (at least one map)
    assert store.get_inspection(recs[2].id).wafer_yield is None and store.get_inspection(recs[0].id).die_count == 10
