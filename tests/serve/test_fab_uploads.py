"""Wafer-map files uploaded to ``POST /v1/inspect/wafer-maps``: the `adrcs convert` npz and fab files (STDF, KLARF,
SINF, E142), plain and gzip-compressed; one inspection per wafer with its lot, wafer, die and fail counts and yield;
413 with a pointer to `adrcs predict` past a limit, 415 for pickles; lot and wafer ids normalised on every path."""
from __future__ import annotations

import gzip
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from helpers.runs import small_maps
from helpers.service import assert_clean_error, role_auth

from adrcs.data.fab.wafer_grid import map_counts
from adrcs.data.wafer_map_set import WM811K_CLASSES, WaferMapSet
from adrcs.data.writer import save_wafer_maps_npz

pytestmark = pytest.mark.usefixtures("one_torch_thread")
URL = "/v1/inspect/wafer-maps"


def lot_npz(tmp_path, maps: list, lots: list[str], wafers: list[str]) -> bytes:
    """The `adrcs convert` npz of `maps` with lot and wafer ids."""
    ds = WaferMapSet(maps=[np.asarray(m, np.uint8) for m in maps], labels=np.full(len(maps), -1),
                     class_names=list(WM811K_CLASSES), meta=pd.DataFrame({"lot": lots, "wafer": wafers}))
    return save_wafer_maps_npz(ds, tmp_path / "lot.npz").read_bytes()


def upload(client, tokens, name: str, content: bytes, **form):
    return client.post(URL, files={"file": (name, content)}, data=form, headers=role_auth(tokens, "inspector"))


def test_convert_npz_carries_lot_wafer_and_counts(make_wafer_service, tmp_path):
    client, tokens, store = make_wafer_service()
    maps = small_maps(3, seed=4)
    r = upload(client, tokens, "lot.npz", lot_npz(tmp_path, maps, ["LOT-7"] * 3, ["01", "02", " 'W3' "]))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["lot"] for x in res] == ["LOT-7"] * 3 and [x["wafer"] for x in res] == ["1", "2", "W3"]
    for x, m in zip(res, maps):
        want = map_counts(np.asarray(m, np.uint8))
        assert (x["die_count"], x["fail_count"]) == (want["die_count"], want["fail_count"])
        assert x["yield"] == pytest.approx(want["yield"], abs=1e-6)
        rec = store.get_inspection(x["id"])
        assert (rec.lot, rec.wafer, rec.die_count, rec.fail_count) == ("LOT-7", x["wafer"], x["die_count"],
                                                                      x["fail_count"])
        assert rec.wafer_yield == pytest.approx(want["yield"], abs=1e-6)
    one = client.get(f"/v1/inspections/{res[0]['id']}", headers=role_auth(tokens, "inspector")).json()
    assert one["die_count"] == res[0]["die_count"] and one["yield"] == pytest.approx(res[0]["yield"])
    # form fields win over the file's ids
    r = upload(client, tokens, "lot.npz", lot_npz(tmp_path, maps[:2], ["A", "A"], ["1", "2"]), lot="007", wafer="W9")
    assert [(x["lot"], x["wafer"]) for x in r.json()["results"]] == [("7", "W9"), ("7", "W9")]


def test_json_ids_are_normalised_on_both_paths(make_wafer_service, fast_path):
    client, tokens, store = make_wafer_service(fast_path=fast_path)
    r = client.post(URL, json={"maps": small_maps(3), "lot": " '0042' ", "wafer": ["03", "W03", None]},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [(x["lot"], x["wafer"]) for x in res] == [("42", "3"), ("42", "W03"), ("42", None)]
    for x, m in zip(res, small_maps(3)):
        m = np.asarray(m)
        assert (x["die_count"], x["fail_count"]) == ((m > 0).sum(), (m == 2).sum())
        assert x["yield"] == pytest.approx(1 - (m == 2).sum() / (m > 0).sum(), abs=1e-6)
    assert store.count_inspections(lot="42") == 3
    h = role_auth(tokens, "inspector")
    assert client.get("/v1/inspections", params={"lot": "042"}, headers=h).json()["total"] == 3
    r = client.post(URL, json={"maps": small_maps(1), "lot": "  "}, headers=h)  # nothing left: no lot
    assert r.json()["results"][0]["lot"] is None


def test_gzip_json_upload_is_read_in_the_worker(make_wafer_service):
    client, tokens, store = make_wafer_service()
    body = json.dumps({"maps": small_maps(2), "lot": "GZ", "wafer": ["1", "2"]}).encode()
    r = upload(client, tokens, "maps.json.gz", gzip.compress(body))
    assert r.status_code == 200, r.text
    assert [(x["lot"], x["wafer"]) for x in r.json()["results"]] == [("GZ", "1"), ("GZ", "2")]
    assert client.app.state.parser._pool is not None  # compressed: expanded in the parse worker process


def test_pickles_still_get_415(make_wafer_service):
    client, tokens, store = make_wafer_service()
    p = pickle.dumps({"maps": small_maps(1)}, protocol=4)
    for name, content in (("lot.pkl", p), ("lot.pkl.gz", gzip.compress(p)), ("lot.stdf", gzip.compress(p))):
        body = assert_clean_error(upload(client, tokens, name, content), 415)
        assert "adrcs convert" in body["detail"], body
    body = assert_clean_error(upload(client, tokens, "x.txt.gz", gzip.compress(b"hello, not a wafer map")), 415)
    assert "STDF" in body["detail"] and "x.txt.gz" in body["detail"]
    assert store.count_inspections() == 0


def test_over_the_limits_413_points_to_adrcs_predict(make_wafer_service, tmp_path):
    client, tokens, store = make_wafer_service(max_request_bytes=200_000, max_maps_per_request=4)
    bodies = {
        "more maps than the limit": ("lot.npz", lot_npz(tmp_path, small_maps(6), ["L"] * 6, list("123456"))),
        "expands past the cap": ("big.json.gz", gzip.compress(b'{"maps": [' + b" " * 2_000_000 + b"]}")),
        "body over the request limit": ("huge.npz", b"PK\x03\x04" + bytes(300_000)),
    }
    for what, (name, content) in bodies.items():
        body = assert_clean_error(upload(client, tokens, name, content), 413)
        assert "adrcs predict --model RUN --data FILE" in body["detail"], (what, body)
    assert store.count_inspections() == 0


def test_fab_files_plain_and_gzip(make_wafer_service, tmp_path):
    client, tokens, store = make_wafer_service()
    h = role_auth(tokens, "inspector")
    files = fab_files(tmp_path)
    for fmt, (name, content, grids) in files.items():
        lot = LOTS[fmt]
        for label, data in ((name, content), (name + ".gz", gzip.compress(content))):
            r = upload(client, tokens, label, data)
            assert r.status_code == 200, (fmt, r.text)
            res = r.json()["results"]
            assert [(x["lot"], x["wafer"]) for x in res] == [(lot.lstrip("0"), str(i + 1)) for i in range(3)], fmt
            for x, m in zip(res, grids):
                assert (x["die_count"], x["fail_count"]) == ((m > 0).sum(), (m == 2).sum()), (fmt, x)
                assert x["yield"] == pytest.approx(1 - (m == 2).sum() / (m > 0).sum(), abs=1e-6), (fmt, x)
                assert store.get_inspection(x["id"]).lot == lot.lstrip("0")
        summary = client.get(f"/v1/lots/{lot}", headers=h).json()["summary"]  # "0071" finds lot "71"
        assert summary["wafers"] == 6 and summary["distinct_wafers"] == 3, (fmt, summary)
        png = client.get(f"/v1/lots/{lot}/stacked.png", headers=h)
        assert png.status_code == 200 and png.headers["x-wafer-maps"] == "3", fmt
    assert set(files) == set(LOTS)


def test_untested_dies_are_left_out_of_the_yield(make_wafer_service, tmp_path):
    from helpers.sinf_writer import write_sinf

    client, tokens, store = make_wafer_service()
    grids = [np.asarray(m, np.uint8) for m in small_maps(2, side=12, seed=5)]
    plans = write_sinf(tmp_path / "u.sinf", grids, lot="U1", untested_share=0.25, seed=2)
    r = upload(client, tokens, "u.sinf", (tmp_path / "u.sinf").read_bytes())
    assert r.status_code == 200, r.text
    for x, p in zip(r.json()["results"], plans):
        dies, fails = int((p["expected"] > 0).sum()), int((p["expected"] == 2).sum())
        assert p["untested"] > 0 and (x["die_count"], x["fail_count"]) == (dies, fails)
        assert x["yield"] == pytest.approx((dies - p["untested"] - fails) / (dies - p["untested"]), abs=1e-6)


LOTS = {"stdf": "0070", "klarf": "0071", "sinf": "0073", "e142": "0074", "g85": "0075"}  # lot ids written (stored: no leading 0s)


def fab_files(tmp_path) -> dict[str, tuple[str, bytes, list[np.ndarray]]]:
    """format -> (file name, bytes, die-code maps) of a small 3-wafer lot written by the test writers: lot `LOTS`,
    wafer ids 01, 02, 03, every die tested."""
    from helpers.klarf_writer import circle_map, write_klarf
    from helpers.sinf_writer import write_e142, write_g85, write_sinf
    from helpers.stdf_writer import write_stdf

    rng = np.random.default_rng(3)
    base = circle_map(12, (5000.0, 4000.0))  # a round wafer (KLARF keeps the dies inside the wafer circle)
    grids = []
    for share in (0.1, 0.3, 0.5):
        m = base.copy()
        m[(m > 0) & (rng.random(m.shape) < share)] = 2
        grids.append(m)
    pairs = list(zip(["01", "02", "03"], grids))
    out = {}
    write_stdf(tmp_path / "lot.stdf", pairs, lot=LOTS["stdf"], retests=2, sites=2)
    out["stdf"] = "lot.stdf"
    write_klarf(tmp_path / "lot.klarf", pairs, lot=LOTS["klarf"])
    out["klarf"] = "lot.klarf"
    write_sinf(tmp_path / "lot.sinf", pairs, lot=LOTS["sinf"])
    out["sinf"] = "lot.sinf"
    write_e142(tmp_path / "lot.xml", pairs, lot=LOTS["e142"])
    out["e142"] = "lot.xml"
    write_g85(tmp_path / "lot_g85.xml", pairs, lot=LOTS["g85"])
    out["g85"] = "lot_g85.xml"
    return {fmt: (name, (tmp_path / name).read_bytes(), grids) for fmt, name in out.items()}
