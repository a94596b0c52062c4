"""The inspection service through FastAPI's test client: inspect, list, review, stats, models (promote,
rollback), roles, bad inputs, the review picture, images; `adrcs serve` as a process under load."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers.bench import bench_service
from helpers.frames import make_wm811k_frame
from helpers.runs import small_maps, train_detector_run, train_wafer_run
from helpers.service import inspect_maps, role_auth, wafer_service

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two tiny wafer runs (seeds 0 and 1) and their folder."""
    tmp = tmp_path_factory.mktemp("serve")
    return {"a": train_wafer_run(tmp, 0), "b": train_wafer_run(tmp, 1), "tmp": tmp}


@pytest.fixture
def service(runs, tmp_path):
    """(client, tokens, store) of a service on run a."""
    with wafer_service(runs["a"], tmp_path / "adrcs.db") as svc:
        yield svc


def test_training_writes_drift_reference(runs):
    ref = json.loads((runs["a"] / "drift_reference.json").read_text())
    assert ref["class_names"] and ref["confidence_hist"] is not None


def test_drift_flags_shifted_traffic(service, monkeypatch):
    client, tokens, store = service
    monkeypatch.setattr(client.app.state.config.drift, "min_window", 20)
    model = client.app.state.host.current("wafer")
    rare = min(model.reference.class_names, key=lambda c: model.reference.class_probs[
        model.reference.class_names.index(c)] if isinstance(model.reference.class_probs, list)
        else model.reference.class_probs[c])
    from adrcs.serve.store import NewInspection

    store.add_inspections([NewInspection(kind="wafer_map", model_version=model.version, predicted=rare,
                                         probabilities={rare: 0.99}, confidence=0.99, content=b"x" * (i + 1),
                                         media_type="application/x-npy", lot="SHIFT") for i in range(40)])
    drift = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()["drift"]
    assert drift["status"] in ("warning", "alert"), drift


def test_health_docs_metrics_page(service):
    client, tokens, _ = service
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["models"]["wafer"].startswith("wafer-")
    assert "/v1/inspect/wafer-maps" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    inspect_maps(client, tokens)
    text = client.get("/metrics").text
    assert "adrcs_requests_total" in text and "adrcs_predictions_total" in text and "adrcs_model_info" in text
    assert "ADRCS review" in client.get("/").text


def test_inspect_json_maps_stored_with_everything(service):
    client, tokens, store = service
    body = inspect_maps(client, tokens, n=3, wafer=["w1", "w2", "w3"], tool="T7")
    res = body["results"]
    assert len(res) == 3 and body["model_version"].startswith("wafer-")
    for r, w in zip(res, ["w1", "w2", "w3"]):
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-3
        assert r["class"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["confidence"] == pytest.approx(max(r["probabilities"].values()), abs=1e-5)
        rec = store.get_inspection(r["id"])
        assert rec.lot == "L1" and rec.wafer == w and rec.tool == "T7" and rec.predicted == r["class"]
        content, media = store.get_blob(rec.input_sha256)
        assert media == "application/x-npy"
    # 0/128/255 coding gives the same answer as 0/1/2
    m = np.array(small_maps(1)[0])
    r255 = client.post("/v1/inspect/wafer-maps", json={"maps": [np.array([0, 128, 255])[m].tolist()]},
                       headers=role_auth(tokens, "inspector")).json()["results"][0]
    r012 = client.post("/v1/inspect/wafer-maps", json={"maps": [m.tolist()]},
                       headers=role_auth(tokens, "inspector")).json()["results"][0]
    assert r255["probabilities"] == r012["probabilities"]


def test_inspect_uploaded_npz_and_json_pickle_refused(service, tmp_path):
    client, tokens, _ = service
    p = tmp_path / "lot.pkl.xz"
    make_wm811k_frame(np.random.default_rng(3), per_class=1).to_pickle(p)
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("lot.pkl.xz", p.read_bytes())},
                    data={"lot": "LOT9"}, headers=role_auth(tokens, "inspector"))
    assert r.status_code == 415 and "adrcs convert" in r.json()["detail"], r.text  # pickles are never unpickled
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("m.json", json.dumps({"maps": small_maps(3)}).encode())},
                    data={"lot": "LOT9"}, headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 3 and {x["lot"] for x in r.json()["results"]} == {"LOT9"}
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.array(small_maps(2), np.uint8), arr_1=np.zeros((2, 8), np.int64))
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("m.npz", buf.getvalue())},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text and len(r.json()["results"]) == 2


def test_list_filters_get_and_picture(service):
    client, tokens, _ = service
    inspect_maps(client, tokens, n=2, lot="A")
    inspect_maps(client, tokens, n=3, lot="B")
    h = role_auth(tokens, "inspector")
    b = client.get("/v1/inspections", params={"lot": "B"}, headers=h).json()
    assert b["total"] == 3 and all(i["lot"] == "B" for i in b["items"])
    one = b["items"][0]
    cls = client.get("/v1/inspections", params={"cls": one["class"]}, headers=h).json()
    assert cls["total"] >= 1 and all(i["class"] == one["class"] for i in cls["items"])
    low = client.get("/v1/inspections", params={"low_confidence": True}, headers=h).json()
    assert all(i["confidence"] <= 0.7 for i in low["items"])
    page = client.get("/v1/inspections", params={"limit": 2, "offset": 1}, headers=h).json()
    assert len(page["items"]) == 2 and page["total"] == 5
    assert client.get("/v1/inspections", params={"since": "2000-01-01T00:00:00Z"}, headers=h).json()["total"] == 5
    assert client.get("/v1/inspections", params={"until": "2000-01-01"}, headers=h).json()["total"] == 0
    assert client.get(f"/v1/inspections/{one['id']}", headers=h).json()["id"] == one["id"]
    png = client.get(f"/v1/inspections/{one['id']}/image.png", headers=h)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_review_confirm_correct_and_permissions(service):
    client, tokens, store = service
    rid = inspect_maps(client, tokens, n=1)["results"][0]["id"]
    body = {"action": "confirm"}
    assert client.post(f"/v1/inspections/{rid}/review", json=body,
                       headers=role_auth(tokens, "inspector")).status_code == 403
    r = client.post(f"/v1/inspections/{rid}/review", json=body, headers=role_auth(tokens, "engineer"))
    assert r.status_code == 200, r.text
    assert r.json()["inspection"]["reviewed"] and r.json()["review"]["reviewer"] == "engineer-user"
    r = client.post(f"/v1/inspections/{rid}/review", json={"action": "correct", "label": "Scratch"},
                    headers=role_auth(tokens, "engineer"))
    assert r.status_code == 200 and r.json()["inspection"]["effective_label"] == "Scratch"
    rec = store.get_inspection(rid)
    assert len(rec.reviews) == 2 and rec.predicted != "" and rec.label == "Scratch"  # nothing overwritten
    bad = client.post(f"/v1/inspections/{rid}/review", json={"action": "correct", "label": "Nope"},
                      headers=role_auth(tokens, "engineer"))
    assert bad.status_code == 422 and "unknown class" in bad.json()["detail"]
    assert client.post(f"/v1/inspections/{rid}/review", json={"action": "correct"},
                       headers=role_auth(tokens, "engineer")).status_code == 422
    assert client.post(f"/v1/inspections/{rid}/review", json={"action": "delete"},
                       headers=role_auth(tokens, "engineer")).status_code == 422
    assert client.post("/v1/inspections/999999/review", json=body,
                       headers=role_auth(tokens, "engineer")).status_code == 404
    reviewed = client.get("/v1/inspections", params={"reviewed": True}, headers=role_auth(tokens, "inspector")).json()
    assert [i["id"] for i in reviewed["items"]] == [rid]


def test_stats_counts_and_drift(service):
    client, tokens, _ = service
    inspect_maps(client, tokens, n=4, lot="L1")
    inspect_maps(client, tokens, n=2, lot="L2")
    s = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()
    per_lot = {}
    for row in s["counts"]:
        per_lot[row["lot"]] = per_lot.get(row["lot"], 0) + row["count"]
    assert per_lot == {"L1": 4, "L2": 2} and s["total"] == 6
    assert s["drift"]["status"] == "insufficient_data"  # 6 maps; the reference comes from drift_reference.json
    assert s["drift"]["model_version"].startswith("wafer-")
    day = client.get("/v1/stats", params={"by": "day"}, headers=role_auth(tokens, "inspector")).json()
    assert sum(r["count"] for r in day["counts"]) == 6
    assert client.get("/v1/stats", params={"by": "tool"}, headers=role_auth(tokens, "inspector")).status_code == 422


def test_models_promote_rollback_roles(service, runs):
    client, tokens, store = service
    first = client.get("/v1/models", headers=role_auth(tokens, "inspector")).json()["champions"]["wafer"]
    second = client.app.state.host.register(runs["b"])
    assert second != first and store.champion("wafer").version == first
    assert client.post(f"/v1/models/{second}/promote", headers=role_auth(tokens, "engineer")).status_code == 403
    assert client.post("/v1/models/wafer-nope/promote", headers=role_auth(tokens, "admin")).status_code == 404
    r = client.post(f"/v1/models/{second}/promote", headers=role_auth(tokens, "admin"))
    assert r.status_code == 200 and r.json()["champion"]["version"] == second
    assert inspect_maps(client, tokens, n=1)["model_version"] == second  # served by the new champion
    r = client.post("/v1/models/rollback", headers=role_auth(tokens, "admin"))
    assert r.status_code == 200 and r.json()["champion"]["version"] == first
    assert inspect_maps(client, tokens, n=1)["model_version"] == first
    assert client.post("/v1/models/rollback", headers=role_auth(tokens, "admin")).status_code == 409
    listed = client.get("/v1/models", headers=role_auth(tokens, "inspector")).json()
    assert {m["version"] for m in listed["models"]} == {first, second}


def test_tokens_missing_wrong_revoked(service):
    client, tokens, store = service
    body = {"maps": small_maps(1)}
    assert client.post("/v1/inspect/wafer-maps", json=body).status_code == 401
    assert client.post("/v1/inspect/wafer-maps", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/v1/inspect/wafer-maps", json=body, headers={"X-API-Token": tokens["admin"]}).status_code == 200
    store.revoke_token("inspector-user")
    assert client.post("/v1/inspect/wafer-maps", json=body, headers=role_auth(tokens, "inspector")).status_code == 401


def test_token_cache_remembers_a_check(runs, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    tok = store.create_token("i", "inspector")
    app = create_app(ServiceConfig(models=[str(runs["a"])], token_cache_s=60), store=store)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {tok}"}
        assert client.get("/v1/models", headers=h).status_code == 200
        store.revoke_token("i")
        assert client.get("/v1/models", headers=h).status_code == 200  # within the cache time
        app.state.token_cache.clear()
        assert client.get("/v1/models", headers=h).status_code == 401


@pytest.mark.parametrize("body, fragment", [
    ({"maps": [[[0, 1], [1]]]}, "rows of different lengths"),
    ({"maps": [[0, 1, 2]]}, "2-D grid"),
    ({"maps": [[[0, 7], [1, 1]]]}, "die codes"),
    ({"maps": []}, "non-empty"),
    ({"nomaps": 1}, "'maps'"),
    ({"maps": small_maps(2), "wafer": ["only-one"]}, "one per map"),
])
def test_bad_wafer_inputs_get_422_with_a_message(service, body, fragment):
    client, tokens, _ = service
    r = client.post("/v1/inspect/wafer-maps", json=body, headers=role_auth(tokens, "inspector"))
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    assert "Traceback" not in r.text


def test_other_bad_requests(service):
    client, tokens, _ = service
    h = role_auth(tokens, "inspector")
    r = client.post("/v1/inspect/wafer-maps", content=b"{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    huge = {"maps": [np.ones((1000, 1000), np.int64).tolist()]}
    assert client.post("/v1/inspect/wafer-maps", json=huge, headers=h).status_code == 413
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("x.pkl", b"not a pickle")}, headers=h)
    assert r.status_code == 415 and "x.pkl" in r.json()["detail"]
    evil = io.BytesIO()
    import pickle

    pickle.dump({"a": eval}, evil)  # noqa: S301 - a pickle that references a builtin function
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("evil.pkl", evil.getvalue())}, headers=h)
    assert r.status_code == 415 and "pickle" in r.json()["detail"]
    r = client.post("/v1/inspect/images", files={"file": ("a.png", b"garbage")}, headers=h)
    assert r.status_code in (422, 503)
    assert client.get("/v1/inspections/123456", headers=h).status_code == 404
    assert client.get("/v1/inspections", params={"since": "yesterday"}, headers=h).status_code == 422
    assert client.get("/v1/inspections", params={"limit": 0}, headers=h).status_code == 422


def _fast_path_cases(tokens: dict) -> list[tuple[str, dict, Any]]:
    """(name, request kwargs, setup(app) or None) for the fast-path parity test."""
    h = role_auth(tokens, "inspector")
    json_h = {**h, "Content-Type": "application/json"}

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    def no_model(*_a, **_k):
        raise LookupError("no wafer model deployed")

    return [
        ("ok", {"json": {"maps": small_maps(2), "lot": "L1", "wafer": ["a", "b"], "tool": "T1"}, "headers": h}, None),
        ("ok by X-API-Token, no content type", {"content": json.dumps({"maps": small_maps(1)}).encode(),
                                                "headers": {"X-API-Token": tokens["inspector"]}}, None),
        ("no token", {"json": {"maps": small_maps(1)}}, None),
        ("wrong token", {"json": {"maps": small_maps(1)}, "headers": {"Authorization": "Bearer nope"}}, None),
        ("not JSON", {"content": b"{not json", "headers": json_h}, None),
        ("not an object", {"content": b"[1, 2]", "headers": json_h}, None),
        ("bad codes", {"json": {"maps": [[[0, 7], [1, 1]]]}, "headers": h}, None),
        ("too many maps", {"json": {"maps": small_maps(6)}, "headers": h}, None),
        ("over the size limit", {"content": b" " * 2_000_001, "headers": json_h}, None),
        ("over the size limit, streamed", {"content": iter([b" " * 1_000_000] * 3), "headers": json_h}, None),
        ("no model", {"json": {"maps": small_maps(1)}, "headers": h}, no_model),
        ("internal error", {"json": {"maps": small_maps(1)}, "headers": h}, boom),
    ]


def test_fast_path_answers_like_the_fastapi_route(runs, tmp_path):
    answers = {}
    for fast in (True, False):
        store = Store(f"sqlite:///{tmp_path / f'fast{fast}.db'}")
        tokens = {"inspector": store.create_token("i", "inspector")}
        app = create_app(ServiceConfig(models=[str(runs["a"])], max_request_bytes=2_000_000, max_maps_per_request=5,
                                       token_cache_s=0, fast_path=fast), store=store)
        assert (app.fast_path is not None) == fast
        served = []
        if fast:  # count what the fast path answers
            real = app.fast_path

            class Counting:
                handles = real.handles

                async def __call__(self, scope, receive, send):
                    served.append(scope["path"])
                    await real(scope, receive, send)

            app.fast_path = Counting()
        got = answers[fast] = {}
        with TestClient(app, raise_server_exceptions=False) as client:
            for name, kwargs, setup in _fast_path_cases(tokens):
                host_current = app.state.host.current
                if setup is not None:
                    app.state.host.current = setup
                r = client.post("/v1/inspect/wafer-maps", **kwargs)
                app.state.host.current = host_current
                body = r.json()
                for res in body.get("results", []):
                    res.pop("id")
                body.pop("request_id", None)
                got[name] = (r.status_code, body, r.headers.get("www-authenticate"), r.headers["content-type"])
            metrics = client.get("/metrics").text
            assert 'route="/v1/inspect/wafer-maps",status="200"' in metrics  # counted by either path
            assert 'route="/v1/inspect/wafer-maps",status="401"' in metrics
            assert store.count_inspections() == 3
            assert len(served) == (len(got) if fast else 0)
            if fast:  # a multipart upload to the same path goes through FastAPI
                buf = io.BytesIO()
                np.savez(buf, arr_0=np.array(small_maps(2), np.uint8), arr_1=np.zeros((2, 8), np.int64))
                r = client.post("/v1/inspect/wafer-maps", files={"file": ("m.npz", buf.getvalue())},
                                headers=role_auth(tokens, "inspector"))
                assert r.status_code == 200 and len(r.json()["results"]) == 2 and len(served) == len(got)
    assert answers[True] == answers[False]
    ok = answers[True]
    assert ok["ok"][0] == 200 and [r["wafer"] for r in ok["ok"][1]["results"]] == ["a", "b"]
    assert {name: v[0] for name, v in ok.items()} == {
        "ok": 200, "ok by X-API-Token, no content type": 200, "no token": 401, "wrong token": 401, "not JSON": 422,
        "not an object": 422, "bad codes": 422, "too many maps": 422, "over the size limit": 413,
        "over the size limit, streamed": 413, "no model": 503,
        "internal error": 500}
    assert ok["no token"][2] == "Bearer" and ok["internal error"][1]["detail"].startswith("internal error")
    assert "secret" not in json.dumps(ok["internal error"][1])


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory) -> Path:
    """A tiny detector run (images of it under ../data/imgs)."""
    return train_detector_run(tmp_path_factory.mktemp("det"))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_inspect_image_with_template(runs, detector_run, tmp_path, runtime):
    from PIL import Image

    store = Store(f"sqlite:///{tmp_path / 'img.db'}")
    tok = store.create_token("insp", "inspector")
    app = create_app(ServiceConfig(models=[str(runs["a"]), str(detector_run)], runtime=runtime), store=store)
    img_dir = detector_run.parent / "data" / "imgs"
    test, temp = (img_dir / "0000_test.jpg").read_bytes(), (img_dir / "0000_temp.jpg").read_bytes()
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {tok}"}
        r = client.post("/v1/inspect/images", files={"file": ("0000_test.jpg", test), "template": ("t.jpg", temp)},
                        data={"lot": "P1"}, headers=h)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["kind"] == "detect" and out["width"] == 96 and isinstance(out["boxes"], list)
        models = client.get("/v1/models", headers=h).json()
        assert models["runtimes"]["detect"] == runtime
        # a detector has no prediction set: its decision is its predicted class
        assert (out["decision"], out["set"], out["unknown_score"]) == (out["class"], "", None)
        stored = client.get(f"/v1/inspections/{out['id']}", headers=h).json()
        assert (stored["decision"], stored["set"], stored["unknown_score"]) == (out["class"], "", None)
        for b in out["boxes"]:
            assert {"class", "score", "x1", "y1", "x2", "y2"} <= set(b)
        png = client.get(f"/v1/inspections/{out['id']}/image.png", headers=h)
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (96, 96)
        r = client.post("/v1/inspect/images", files={"file": ("0000_test.jpg", test)}, headers=h)
        assert r.status_code == 422 and "template" in r.json()["detail"]
        r = client.post("/v1/inspect/images", files={"file": ("bad.png", b"\x89PNG broken")}, headers=h)
        assert r.status_code == 422 and "bad.png" in r.json()["detail"]


@pytest.mark.slow
def test_adrcs_serve_process_under_both_load_generators(runs, tmp_path):
    """`adrcs serve` as its own process (the flags of a line deployment), driven by bench/service.py's raw-socket
    and httpx load generators: every request answered and every acknowledged inspection stored."""
    import asyncio

    bench = bench_service()
    db = f"sqlite:///{tmp_path / 'line.db'}"
    port, token_file = bench.free_port(), tmp_path / "admin.token"
    proc = bench.start_server(runs["a"], db, port, token_file, tmp_path / "server.log",
                              extra=["--torch-threads", "1", "--batch-wait-ms", "0"])
    try:
        url, token = f"http://127.0.0.1:{port}", token_file.read_text().strip()
        bodies = [json.dumps({"maps": small_maps(k + 1, seed=k), "lot": "L1"}).encode() for k in range(3)]
        acked: list[int] = []
        for client in ("raw", "httpx"):
            res = asyncio.run(bench.drive(url, token, bodies, 2, 3, 1.0, acked, client=client))
            assert res["errors"] == 0 and res["requests_ok"] > 0 and res["latency_ms_p99"] > 0, res
        bad = [b'{"maps": [[[0, 1], [1, 7]]]}']
        res = asyncio.run(bench.drive(url, token, bad, 1, 1, 0.3, client="raw"))
        assert res["requests_ok"] == 0 and set(res["error_kinds"]) == {"422"}
    finally:
        proc.terminate()
        proc.wait(30)
    stored = {r.id for r in Store(db).list_inspections(limit=10 ** 6)}
    assert acked and set(acked) <= stored
