"""Hostile uploads to ``POST /v1/inspect/wafer-maps``: pickles (415, nothing executed, no file touched),
decompression bombs and oversize maps inside uploads (413, nothing expanded), on both paths."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adrcs.serve.inputs import image_from_upload, upload_kind
from helpers.runs import small_maps
from helpers.service import assert_clean_error


def _str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def dotted_eval_pickle(code: str) -> bytes:
    """Protocol 4 STACK_GLOBAL with a dotted name: numpy._core.numeric / _frombuffer.__builtins__.get -> eval(code).
    (What issue 15 found: a prefix-checking unpickler follows the dots to ``eval``.)"""
    return (b"\x80\x04" + _str("numpy._core.numeric") + _str("_frombuffer.__builtins__.get") + b"\x93"
            + _str("eval") + b"\x85R" + _str(code) + b"\x85R.")


class _System:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


class _Memmap:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # numpy.memmap(path, uint8, "w+", 0, (1,)) truncates the file
        return np.memmap, (self.path, np.uint8, "w+", 0, (1,))


def evil_uploads(marker: Path, victim: Path) -> dict[str, bytes]:
    """Pickles that would create `marker` or truncate `victim` if unpickled."""
    system = pickle.dumps(_System(f"touch {marker}"), protocol=2)
    return {
        "os.system": system,
        "os.system, protocol 0": pickle.dumps(_System(f"touch {marker}"), protocol=0),
        "dotted name to eval": dotted_eval_pickle(f"open({str(marker)!r}, 'w').write('pwned')"),
        "numpy.memmap truncation": pickle.dumps(_Memmap(str(victim)), protocol=2),
        "xz-compressed pickle": lzma.compress(system),
        "gzip-compressed pickle": gzip.compress(system),
        "bz2-compressed pickle": bz2.compress(system),
        "pickle named .npz": system,
    }


def _post(service, name: str, content: bytes, **data):
    return service.client.post("/v1/inspect/wafer-maps", files={"file": (name, content)}, data=data,
                               headers=service.h())


def test_pickle_uploads_get_415_and_run_nothing(service, tmp_path):
    marker, victim = tmp_path / "marker", tmp_path / "victim.db"
    victim.write_bytes(b"precious data" * 100)
    before = (victim.stat().st_mtime_ns, victim.read_bytes())
    cases = evil_uploads(marker, victim)
    for name, content in cases.items():
        fname = "x.npz" if name.endswith(".npz") else "lot.pkl"
        body = assert_clean_error(_post(service, fname, content), 415)
        assert "adrcs convert" in body["detail"] or "npz" in body["detail"], (name, body)
    assert not marker.exists(), "an upload ran code"
    assert (victim.stat().st_mtime_ns, victim.read_bytes()) == before, "an upload touched a file"
    assert service.store.count_inspections() == 0
    assert len(cases) == 8


def test_npz_with_object_arrays_is_refused(service):
    buf = io.BytesIO()
    maps = np.empty(2, dtype=object)
    maps[0], maps[1] = np.ones((3, 3), np.uint8), np.ones((4, 4), np.uint8)
    np.savez(buf, arr_0=maps)
    assert_clean_error(_post(service, "maps.npz", buf.getvalue()), 415)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


@pytest.mark.slow
def test_decompression_bombs_are_refused_without_expanding(make_service, fast_path):
    svc = make_service(fast_path, max_request_bytes=100_000)
    bombs = {
        "npz of 32 MB of maps": _npz(arr_0=np.ones((1000, 64, 64), np.int64)),
        "npz of 64 MB in one member": _npz(arr_0=np.zeros((8, 1024, 1024), np.int64)),
        "npz with many members": _npz(**{f"a{i}": np.zeros((100, 100), np.int64) for i in range(40)}),
    }
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("arr_0.npy", b"\0" * 20_000_000)  # not even an array
    bombs["zip of 20 MB, not an array"] = zbuf.getvalue()
    bombs["bz2 of 50 MB"] = bz2.compress(b"\0" * 50_000_000)
    bombs["xz of 50 MB"] = lzma.compress(b"\0" * 50_000_000)
    bombs["gzip of 50 MB"] = gzip.compress(b"\0" * 50_000_000)
    answers = {}
    for name, content in bombs.items():
        assert len(content) < 100_000, name
        answers[name] = assert_clean_error(_post(svc, "bomb.npz", content), (413, 415, 422))["detail"]
    assert svc.store.count_inspections() == 0
    assert all("limit" in d for n, d in answers.items() if n.startswith("npz of")), answers


def test_oversize_maps_inside_uploads(make_service, fast_path):
    svc = make_service(fast_path, max_maps_per_request=5, max_request_bytes=10_000_000)  # cap above 25 MB
    big = np.ones((1, 5000, 5000), np.uint8)  # ~25 KB compressed: a 4 KB-class upload of a 5000x5000 map
    body = assert_clean_error(_post(svc, "big.npz", _npz(arr_0=big)), 413)
    assert "side" in body["detail"]
    assert_clean_error(_post(svc, "wide.npz", _npz(arr_0=np.ones((2, 10, 2000), np.uint8))), 413)
    many = np.array(small_maps(6), np.uint8)
    assert_clean_error(_post(svc, "many.npz", _npz(arr_0=many, arr_1=np.zeros((6, 8), np.int64))), (413, 422))
    # JSON bodies and JSON uploads: the same side limit
    r = svc.client.post("/v1/inspect/wafer-maps", json={"maps": [np.ones((1100, 3), int).tolist()]},
                        headers=svc.h())
    assert_clean_error(r, 422)
    r = _post(svc, "maps.json", b'{"maps": [' + str(np.ones((3, 1100), int).tolist()).encode() + b"]}")
    assert_clean_error(r, 422)
    assert svc.store.count_inspections() == 0
    ok = _post(svc, "ok.npz", _npz(arr_0=np.array(small_maps(2), np.uint8), arr_1=np.zeros((2, 8), np.int64)))
    assert ok.status_code == 200, ok.text


def test_image_pixel_limit_before_decoding():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (10_000, 5_000)).save(buf, format="PNG")  # 50 M pixels in a few KB
    with pytest.raises(Exception) as err:
        image_from_upload("big.png", buf.getvalue(), "L", max_pixels=40_000_000)
    assert "pixel limit" in str(err.value) and type(err.value).__name__ == "InputTooLarge"
    with pytest.raises(Exception) as err:
        image_from_upload("x.png", b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + b"\xff" * 17)
    assert "Error" not in str(err.value) and "not a readable image" in str(err.value)


def test_upload_kind_sniffs_bytes_not_names():
    assert upload_kind(b"PK\x03\x04rest") == "npz"
    assert upload_kind(b'  {"maps": []}') == "json"
    assert upload_kind(pickle.dumps([1])) == "pickle"
    assert upload_kind(lzma.compress(b"x")) == "pickle"
    assert upload_kind(b"GIF89a") == "other"


def test_convert_npz_layout_is_accepted(service, tmp_path):
    from helpers.frames import make_wm811k_frame

    from adrcs.data import load
    from adrcs.data.writer import save_wafer_maps_npz

    src = tmp_path / "lot.pkl.xz"
    make_wm811k_frame(np.random.default_rng(5), per_class=1).to_pickle(src)
    ds = load(src)  # a local file the user trusts, read by the CLI's loader
    out = save_wafer_maps_npz(ds, tmp_path / "lot.npz")
    r = _post(service, "lot.npz", out.read_bytes(), lot="L7")
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == len(ds) and {x["lot"] for x in res} == {"L7"}
