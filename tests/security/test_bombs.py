"""Bounded reading: decompression bombs in every compression the loader recognises, npz members
declaring huge sizes or shapes, oversize and too many maps, oversize images.

Caps are lowered (1 MiB) so each bomb stays small and fast: 16 MiB of content behind a few KB. The
reader must stop at the cap (decompressed bytes handed out, and the tracemalloc peak far below the
bomb's size), raise InputTooLarge with one line naming the file, and the service limits name the
service's flag.
"""
from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import lzma
import pickle
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adrcs.data.image_formats import load_images
from adrcs.data.limits import MIB, InputLimits
from adrcs.data.loader import load, load_bytes
from adrcs.data.writer import save_wafer_maps_npz
from adrcs.errors import InputError, InputTooLarge

CAP = InputLimits(max_uncompressed_bytes=MIB)
BOMB_SIZE = 16 * MIB


def _bomb_pickle(size: int = BOMB_SIZE) -> bytes:
    """A pickle start followed by one BINBYTES8 of `size` zero bytes."""
    return b"\x80\x04\x8e" + struct.pack("<Q", size) + bytes(size) + b"."


def _zip_one(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


COMPRESSORS = {
    "xz": lambda d: lzma.compress(d, preset=1),  # 1 MiB dictionary: the decoder's own memory stays small
    "gzip": lambda d: gzip.compress(d),
    "bz2": lambda d: bz2.compress(d),
    "zip": lambda d: _zip_one("data.pkl", d),
}
if importlib.util.find_spec("zstandard") is not None:
    COMPRESSORS["zstd"] = lambda d: __import__("zstandard").ZstdCompressor().compress(d)


@pytest.fixture
def most_read(monkeypatch) -> list[int]:
    """The most decompressed bytes any BoundedReader handed out during the test."""
    from adrcs.data import bounded_io

    seen = [0]
    account = bounded_io.BoundedReader._account

    def counting(self, data):
        seen[0] = max(seen[0], self.count + len(data))
        return account(self, data)

    monkeypatch.setattr(bounded_io.BoundedReader, "_account", counting)
    return seen


def _peak_while(fn) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        fn()
        err = None
    except BaseException as e:  # noqa: BLE001 - returned to the test
        err = e
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return err, peak


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_bomb_stops_at_the_cap(tmp_path, compression, most_read):
    packed = COMPRESSORS[compression](_bomb_pickle())
    assert len(packed) < BOMB_SIZE // 50  # a real bomb: small file, large content
    path = tmp_path / f"bomb.{compression}"
    path.write_bytes(packed)
    err, peak = _peak_while(lambda: load(path, limits=CAP))
    assert isinstance(err, InputTooLarge), err
    msg = str(err)
    assert "\n" not in msg and str(path) in msg
    assert "larger than the 1 MiB limit" in msg and "--max-uncompressed-mb" in msg
    assert most_read[0] <= MIB + 1  # stopped one byte past the cap
    assert peak < 5 * MIB, f"{peak} bytes in memory for a 1 MiB cap"  # never the 16 MiB


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_upload_bomb_names_the_service_flag(compression):
    packed = COMPRESSORS[compression](_bomb_pickle())
    limits = InputLimits.for_service(max_request_bytes=256 * 1024)  # uploads may expand 4x: 1 MiB
    err, peak = _peak_while(lambda: load_bytes(packed, "lot.pkl.xz", allow_pickle=True, limits=limits))
    assert isinstance(err, InputTooLarge) and "--max-request-mb" in str(err) and str(err).startswith("lot.pkl.xz:")
    assert peak < 5 * MIB


@pytest.mark.parametrize("compression", ["xz", "gzip", "bz2"])
def test_bomb_of_non_pickle_content_reads_only_the_head(tmp_path, compression):
    path = tmp_path / "zeros.pkl"
    path.write_bytes(COMPRESSORS[compression](bytes(BOMB_SIZE)))
    err, peak = _peak_while(lambda: load(path))
    assert isinstance(err, InputError) and "not a wafer-map file (looks like an unknown binary file)" in str(err)
    assert peak < 2 * MIB


@pytest.mark.slow
def test_pickled_frame_over_the_cap(tmp_path, rng):
    maps = [rng.integers(0, 3, (200, 200), dtype=np.uint8) for _ in range(40)]  # 1.6 MB of maps
    path = tmp_path / "big.pkl.xz"
    pd.DataFrame({"waferMap": maps, "failureType": ["Loc"] * 40}).to_pickle(path)
    with pytest.raises(InputTooLarge, match="larger than the 1 MiB limit"):
        load(path, limits=CAP)
    assert len(load(path)) == 40


# ---------------------------------------------------------------- npz: sizes from the directory and headers


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy_header(shape: tuple, dtype: str = "|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_declaring_a_huge_member(tmp_path):
    path = tmp_path / "big.npz"
    path.write_bytes(_npz({"arr_0.npy": _npy_header((8, 1024, 1024)) + bytes(BOMB_SIZE)}))
    assert path.stat().st_size < 100_000
    err, peak = _peak_while(lambda: load(path, limits=CAP))
    assert isinstance(err, InputTooLarge) and "larger than the 1 MiB limit" in str(err)
    assert peak < MIB  # refused from the zip directory, nothing inflated


@pytest.mark.parametrize("shape,dtype,needle", [
    ((10 ** 6, 1000, 1000), "|u1", "holds 1000000 maps"),       # header claims 1 TB, the data is empty
    ((5, 2000, 2000), "|u1", "larger than the limit of 1024 per side"),
    ((10 ** 9,), "<f8", "larger than the"),                     # any member, not only arr_0
])
def test_npz_header_shapes_checked_before_reading(tmp_path, shape, dtype, needle):
    path = tmp_path / "shape.npz"
    name = "arr_0.npy" if len(shape) == 3 else "arr_1.npy"
    members = {name: _npy_header(shape, dtype)}
    if name != "arr_0.npy":
        members["arr_0.npy"] = _npy_header((1, 2, 2)) + bytes(4)
    path.write_bytes(_npz(members))
    err, peak = _peak_while(lambda: load(path, limits=InputLimits(max_uncompressed_bytes=64 * MIB, max_maps=1000)))
    assert isinstance(err, InputTooLarge) and needle in str(err), err
    assert peak < MIB


def test_npz_truncated_member_is_one_line(tmp_path):
    path = tmp_path / "short.npz"
    path.write_bytes(_npz({"arr_0.npy": _npy_header((2, 4, 4)) + bytes(10)}))
    with pytest.raises(InputError, match="array arr_0 is truncated"):
        load(path)


# ---------------------------------------------------------------- map side and count on every path


def _frame(maps) -> pd.DataFrame:
    return pd.DataFrame({"waferMap": maps, "failureType": ["Loc"] * len(maps)})


def test_oversize_map_in_pickle_npz_and_convert_format(tmp_path):
    big = np.ones((1100, 30), np.uint8)
    pkl = tmp_path / "big.pkl"
    _frame([np.ones((5, 5), np.uint8), big]).to_pickle(pkl)
    npz = tmp_path / "big.npz"
    np.savez(npz, arr_0=np.ones((2, 1100, 30), np.uint8))
    from adrcs.data.wafer_map_set import WaferMapSet

    ds = WaferMapSet(maps=[np.ones((5, 5), np.uint8), big], labels=np.array([0, -1]), class_names=["Loc"],
                     meta=pd.DataFrame({"source": ["x", "x"], "index": [0, 1]}))
    conv = save_wafer_maps_npz(ds, tmp_path / "conv.npz")
    for path in (pkl, npz, conv):
        with pytest.raises(InputTooLarge, match="larger than the limit of 1024 per side") as err:
            load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert len(load(conv, limits=InputLimits(max_map_side=2000))) == 2


def test_one_map_referenced_many_times(tmp_path):
    """A pickle stores a shared object once: 200 references to one 1000x1000 map are 1 MB on disk
    but 200 MB of die codes; the total is checked before any map is converted."""
    big = np.full((1000, 1000), 255, np.uint8)
    path = tmp_path / "shared.pkl"
    _frame([big] * 200).to_pickle(path)
    assert path.stat().st_size < 2 * MIB
    err, peak = _peak_while(lambda: load(path, limits=InputLimits(max_uncompressed_bytes=16 * MIB)))
    assert isinstance(err, InputTooLarge) and "maps hold more than 16 MiB of dies" in str(err), err
    assert peak < 8 * MIB


def test_too_many_maps_in_every_format(tmp_path):
    few = InputLimits(max_maps=5)
    maps = [np.ones((6, 6), np.uint8)] * 9
    pkl = tmp_path / "many.pkl.gz"
    _frame(maps).to_pickle(pkl)
    npz = tmp_path / "many.npz"
    np.savez(npz, arr_0=np.stack(maps))
    conv = tmp_path / "conv.npz"
    save_wafer_maps_npz(load(pkl), conv)
    for path in (pkl, npz, conv):
        with pytest.raises(InputTooLarge, match=r"holds 9 (maps|rows), more than the limit of 5"):
            load(path, limits=few)
        assert len(load(path)) == 9


def test_upload_limits_apply_to_bytes(rng):
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.ones((3, 1500, 8), np.uint8))
    with pytest.raises(InputTooLarge, match="up.npz: .*1024 per side"):
        load_bytes(buf.getvalue(), "up.npz", limits=InputLimits.for_service(1 << 20))


# ---------------------------------------------------------------- images


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data: headers are all a bomb needs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width,height,limits", [
    (4000, 4000, InputLimits(max_image_pixels=1_000_000)),
    (60_000, 60_000, None),  # over Pillow's own bomb guard too: still one line
    (9000, 5000, None),      # 45 M pixels: over the default 40 M
])
def test_image_pixel_limit(tmp_path, width, height, limits):
    root = tmp_path / "defects"
    (root / "scratch").mkdir(parents=True)
    (root / "ok").mkdir()
    bomb = root / "scratch" / "huge.png"
    bomb.write_bytes(_png_header(width, height))
    from PIL import Image

    Image.new("L", (8, 8)).save(root / "ok" / "small.png")
    with pytest.raises(InputTooLarge) as err:
        load_images(root, limits=limits)
    msg = str(err.value)
    assert "\n" not in msg and str(bomb) in msg and "larger than the limit of" in msg and "Error" not in msg
