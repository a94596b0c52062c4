"""Client errors are 4xx, never 5xx: extreme ids / offsets / limits / dates, review label bypasses, concurrent
promotes; and what inspectors may not see (server paths). On both paths of the hot route."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from helpers.service import assert_clean_error

EXTREME_IDS = [0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1]
BAD_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+00:01",
             "9999-12-31T23:59:59.999999-23:59", "10000-01-01", "2026-13-01", "2026-02-30", "yesterday", "", "T", "2026-01-01T25:00", "\x00"]


@pytest.fixture
def second_run(run_copy: Path) -> Path:
    """The tiny run with a different checkpoint hash (an extra key), so it registers as another version."""
    import torch

    ck = run_copy / "model.ckpt"
    state = torch.load(ck, map_location="cpu", weights_only=False)
    state["note"] = "second version"
    torch.save(state, ck)
    return run_copy


def test_extreme_ids_get_404_or_422(service):
    h, eng = service.h(), service.h("engineer")
    service.inspect(1)
    n = 0
    for i in EXTREME_IDS:
        for method, path, kw in (("get", f"/v1/inspections/{i}", {}), ("get", f"/v1/inspections/{i}/image.png", {}),
                                 ("post", f"/v1/inspections/{i}/review", {"json": {"action": "confirm"}})):
            r = getattr(service.client, method)(path, headers=eng if method == "post" else h, **kw)
            assert_clean_error(r, (404, 422))
            n += 1
    assert n == 30


def test_extreme_offsets_limits_and_numbers(service):
    h = service.h()
    service.inspect(2)
    assert service.client.get("/v1/inspections", params={"offset": 2**63 - 1}, headers=h).json()["items"] == []
    bad = [{"offset": 2**63}, {"offset": -1}, {"offset": 10**40}, {"limit": 0}, {"limit": 1001}, {"limit": 2**64},
           {"limit": -(2**63)}, {"max_confidence": "nan"}, {"max_confidence": "inf"}, {"max_confidence": "1e999"},
           {"lot": "a\x00b"}, {"cls": "x" * 300}, {"kind": "pickle"}, {"reviewed": "maybe"}, {"offset": "1.5"}]
    for params in bad:
        assert_clean_error(service.client.get("/v1/inspections", params=params, headers=h), 422)
    assert len(bad) == 15


def test_dates_out_of_range_get_422(service):
    h = service.h()
    service.inspect(1)
    for t in BAD_TIMES:
        assert_clean_error(service.client.get("/v1/inspections", params={"since": t}, headers=h), 422)
        assert_clean_error(service.client.get("/v1/inspections", params={"until": t}, headers=h), 422)
        assert_clean_error(service.client.get("/v1/stats", params={"since": t}, headers=h), 422)
    for t in ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00"):
        assert service.client.get("/v1/stats", params={"since": t}, headers=h).status_code == 200
        assert service.client.get("/v1/inspections", params={"until": t}, headers=h).status_code == 200


def test_review_labels_are_checked_for_every_action(service):
    rid = service.inspect(1)["results"][0]["id"]
    eng, url = service.h("engineer"), f"/v1/inspections/{rid}/review"
    bogus = [{"action": "confirm", "label": "TotallyBogus"}, {"action": "correct", "label": "TotallyBogus"},
             {"action": "correct", "label": "[TotallyBogus"}, {"action": "confirm", "label": '["TotallyBogus"]'},
             {"action": "correct", "label": '["Center"]'}, {"action": "correct", "label": ["Center"]},
             {"action": "correct", "label": "center "}, {"action": "correct", "label": "x" * 5000},
             {"action": "correct", "label": ""}, {"action": "correct"}, {"action": "confirm", "label": 7},
             {"action": "delete", "label": "Center"}]
    for body in bogus:
        assert_clean_error(service.client.post(url, json=body, headers=eng), 422)
    assert service.store.get_inspection(rid).reviews == ()
    r = service.client.post(url, json={"action": "confirm"}, headers=eng)
    assert r.status_code == 200 and r.json()["inspection"]["effective_label"] == r.json()["inspection"]["class"]
    assert service.client.post(url, json={"action": "correct", "label": "Scratch"}, headers=eng).status_code == 200
    assert service.store.get_inspection(rid).label == "Scratch"
    assert len(bogus) == 12


def test_registered_classes_extend_review_labels(service):
    rid = service.inspect(1)["results"][0]["id"]
    url = f"/v1/inspections/{rid}/review"
    assert_clean_error(service.client.post(url, json={"action": "correct", "label": "Wavy"},
                                           headers=service.h("engineer")), 422)
    for role in ("inspector", "engineer"):
        assert service.client.post("/v1/classes", json={"name": "Wavy"}, headers=service.h(role)).status_code == 403
    r = service.client.post("/v1/classes", json={"name": "Wavy", "kind": "wafer"}, headers=service.h("admin"))
    assert r.status_code == 201 and r.json()["class"]["name"] == "Wavy"
    assert service.client.post("/v1/classes", json={"name": "Wavy"}, headers=service.h("admin")).status_code == 200
    for bad in ({"name": "[x]"}, {"name": ""}, {"name": "a\x00b"}, {"name": "x" * 101}, {"name": "Ok", "kind": "audio"},
                {"kind": "wafer"}, {"name": 5}):
        assert_clean_error(service.client.post("/v1/classes", json=bad, headers=service.h("admin")), 422)
    listed = service.client.get("/v1/classes", headers=service.h()).json()["classes"]
    assert {"name": "Wavy", "kind": "wafer", "source": "registered"} in listed
    assert any(c["source"] == "model" and c["name"] == "Center" for c in listed)
    r = service.client.post(url, json={"action": "correct", "label": "Wavy"}, headers=service.h("engineer"))
    assert r.status_code == 200 and r.json()["inspection"]["effective_label"] == "Wavy"


@pytest.mark.slow
def test_promote_current_champion_and_concurrent_promotes(service, second_run):
    admin = service.h("admin")
    first = service.client.get("/v1/models", headers=admin).json()["champions"]["wafer"]
    r = service.client.post(f"/v1/models/{first}/promote", headers=admin)
    assert r.status_code == 200 and r.json()["champion"]["version"] == first and r.json()["unchanged"]
    second = service.app.state.host.register(second_run)
    assert second != first
    answers: list[int] = []
    start = threading.Barrier(8)

    def promote(version: str) -> None:
        start.wait()
        answers.append(service.client.post(f"/v1/models/{version}/promote", headers=admin).status_code)

    threads = [threading.Thread(target=promote, args=(v,)) for v in [first, second] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 8
    champions = [m for m in service.store.list_models() if m.status == "champion"]
    assert len(champions) == 1
    assert service.inspect(1)["model_version"] == champions[0].version


def test_models_hide_server_paths_from_non_admins(service, wafer_run):
    for role in ("inspector", "engineer"):
        r = service.client.get("/v1/models", headers=service.h(role))
        assert r.status_code == 200 and str(wafer_run) not in r.text and '"path"' not in r.text
    assert str(wafer_run) in service.client.get("/v1/models", headers=service.h("admin")).text


def test_error_bodies_are_one_line_with_a_request_id(service):
    h = {**service.h(), "Content-Type": "application/json"}
    cases = [(b"{not json", 422), (b"[1, 2]", 422), (b'{"maps": [[[0, 7]]]}', 422), (b'{"maps": "x"}', 422),
             (b'{"maps": [[[1e400]]]}', 422), (b'{"maps": [[[' + b"9" * 400 + b"]]]}", 422),
             (b'{"maps": [[[0, 1]]], "lot": "a\\u0000b"}', 422), (b'{"maps": [[[0, 1]]], "wafer": [1]}', 422),
             (b'{"maps": [[["\\ud800"]]]}', 422), (b"\xff\xfe", 422)]
    for raw, status in cases:
        r = service.client.post("/v1/inspect/wafer-maps", content=raw, headers=h)
        assert_clean_error(r, status)
    r = service.client.post("/v1/inspect/wafer-maps", content=b"{}", headers={**h, "X-Request-ID": "trace-42"})
    assert r.json()["request_id"] == "trace-42" and r.headers["x-request-id"] == "trace-42"
    r = service.client.post("/v1/inspect/wafer-maps", content=b"{}", headers={**h, "X-Request-ID": "bad id\r"})
    assert r.headers["x-request-id"] != "bad id" and len(r.headers["x-request-id"]) == 32
    ok = service.inspect(1)
    stored = service.store.get_inspection(ok["results"][0]["id"])
    assert stored.request_id == ok["request_id"]
    assert json.loads(json.dumps(ok))["request_id"]
    assert len(cases) == 10


def test_multi_label_review_labels():
    from types import SimpleNamespace

    from adrcs.errors import InputError
    from adrcs.serve.classes import review_label

    class Host:
        def current(self, kind):
            if kind != "wafer":
                raise LookupError(kind)
            return SimpleNamespace(class_names=["Center", "Donut", "Scratch"])

    class Classes:
        def list_classes(self, kind):
            return [SimpleNamespace(name="Wavy")] if kind == "wafer" else []

    rec = SimpleNamespace(kind="wafer_map", predicted='["Center"]', probabilities={"Center": 0.9, "Donut": 0.1})
    assert review_label(Classes(), Host(), rec, "confirm", None) is None
    assert review_label(Classes(), Host(), rec, "correct", ["Scratch", "Center", "Center"]) == '["Center","Scratch"]'
    assert review_label(Classes(), Host(), rec, "correct", '["Wavy"]') == '["Wavy"]'
    assert review_label(Classes(), Host(), rec, "correct", []) == "[]"
    bad = ["Center", ["Bogus"], '["Center", 1]', "[not json", ["Center", "x" * 300], '{"a": 1}']
    for label in bad:
        with pytest.raises(InputError):
            review_label(Classes(), Host(), rec, "correct", label)
    assert len(bad) == 6
