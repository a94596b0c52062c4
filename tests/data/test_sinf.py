"""SINF text wafer maps (adrcs.data.formats.sinf): round trips, untested dies, good bins, variants, bad input."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.sinf_writer import sinf_text, plan_bins, write_sinf
from helpers.wafers import make_wafer

from adrcs.data import load
from adrcs.data.fab import FabOptions
from adrcs.data.formats import detect_fab, sinf
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge
from adrcs.samples import SAMPLES_DIR


@pytest.fixture(scope="module")
def maps() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    padded = np.zeros((16, 19), np.uint8)  # an off-wafer border of whole empty rows and columns
    padded[2:14, 3:15] = make_wafer("scratch", 12, rng)
    return [make_wafer("center", 20, rng), make_wafer("edge_ring", (17, 23), rng), padded]


def _check(ds, plans) -> None:
    assert len(ds) == len(plans)
    for got, bins, p in zip(ds.maps, ds.bins, plans):
        assert got.shape == p["map"].shape  # the full ROWCT x COLCT grid, border included
        assert np.array_equal(got, p["expected"])
        assert np.array_equal(bins, p["bins"])


def _error(path: Path, **kw) -> str:
    with pytest.raises(InputError) as e:
        load(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


# ---------------------------------------------------------------- round trips


def test_round_trip_several_wafers(tmp_path: Path, maps) -> None:
    path = tmp_path / "lot.sinf"
    plans = write_sinf(path, maps, lot="LOT-7", device="PART-9", wafer_ids=["07", "W08", "9"])
    ds = load(path)
    _check(ds, plans)
    assert ds.notes["format"] == "sinf"
    m = ds.meta
    assert m["lot"].tolist() == ["LOT-7"] * 3 and m["wafer"].tolist() == ["7", "W08", "9"]
    assert m["part_type"].tolist() == ["PART-9"] * 3 and m["notch"].tolist() == ["DOWN"] * 3
    assert m["die_units"][0] == "mm" and m["die_size_x"][0] == pytest.approx(2.945)
    assert m["fail_count"].tolist() == [p["fails"] for p in plans]
    assert m["untested_count"].tolist() == [0, 0, 0] and not m["untested_flag"].any()
    assert not m["flip_x"].any() and not m["flip_y"].any() and (m["die_x0"] == 0).all()


def test_one_wafer_per_file_gzip_crlf_bom_comments(tmp_path: Path, maps) -> None:
    plans = plan_bins(maps[:1], seed=3)
    text = "\ufeff# written by a prober\n\n" + sinf_text(plans)
    (tmp_path / "w.sinf.gz").write_bytes(gzip.compress(text.replace("\n", "\r\n").encode()))
    (tmp_path / "w.sinf").write_bytes(text.replace("\n", "\r").encode())  # old Mac line ends
    for name in ("w.sinf.gz", "w.sinf"):
        ds = load(tmp_path / name)
        _check(ds, plans)
        assert ds.meta["wafer"][0] == "1"


def test_lines_split_across_reads(tmp_path: Path, maps, monkeypatch) -> None:
    """Tiny reads (a CRLF and UTF-8 characters split between them) give the same wafers and line numbers."""
    plans = write_sinf(tmp_path / "c.sinf", maps[:2], crlf=True, extra=["COMMENT:Prüfung – Los 7"], seed=9)
    monkeypatch.setattr(sinf, "CHUNK", 3)
    ds = load(tmp_path / "c.sinf")
    _check(ds, plans)
    assert ds.meta["comment"][0] == "Prüfung – Los 7"
    bad = (tmp_path / "c.sinf").read_bytes().replace(b"RowData:__", b"RowData:_", 1)
    (tmp_path / "d.sinf").write_bytes(bad)
    assert np.array_equal(load(tmp_path / "d.sinf").maps[0], plans[0]["expected"])  # '_' is no die too
    lines = bad.split(b"\r\n")
    lines[14] = lines[14].replace(b"RowData:", b"RowData:X ", 1)
    (tmp_path / "e.sinf").write_bytes(b"\r\n".join(lines))
    assert ": line 15: RowData has " in _error(tmp_path / "e.sinf")


def test_untested_dies(tmp_path: Path, maps) -> None:
    path = tmp_path / "u.sinf"
    plans = write_sinf(path, maps[:2], untested_share=0.3, seed=1)
    ds = load(path)
    _check(ds, plans)  # '@@' reads as a passing die on the wafer, bin -1
    assert ds.meta["untested_count"].tolist() == [p["untested"] for p in plans]
    assert ds.meta["untested_flag"].all() and ds.notes["untested_flagged"] == 2
    few = write_sinf(tmp_path / "f.sinf", maps[:1], untested_share=0.05, seed=2)
    d2 = load(tmp_path / "f.sinf")
    assert 0 < d2.meta["untested_count"][0] == few[0]["untested"] and not d2.meta["untested_flag"][0]
    tested = int((maps[0] > 0).sum()) - few[0]["untested"]
    assert d2.meta["yield"][0] == pytest.approx((tested - few[0]["fails"]) / tested)


def test_bcequ_and_good_bins_option(tmp_path: Path, maps) -> None:
    m = maps[0]
    plans = write_sinf(tmp_path / "b.sinf", [m], bcequ="01,02", fail_bins=(2, 3), seed=4)
    written = plans[0]["written"]
    ds = load(tmp_path / "b.sinf")
    assert np.array_equal(ds.maps[0], np.where(m == 0, 0, np.where(np.isin(written, (1, 2)), 1, 2)))
    assert ds.meta["good_bin_codes"][0] == "01,02"
    # --good-bins replaces BCEQU
    d1 = load(tmp_path / "b.sinf", fab=FabOptions(good_bins=(1,)))
    assert np.array_equal(d1.maps[0], m)
    d3 = load(tmp_path / "b.sinf", fab=FabOptions(good_bins=(1, 3)))
    assert np.array_equal(d3.maps[0], np.where(m == 0, 0, np.where(np.isin(written, (1, 3)), 1, 2)))
    # no BCEQU (or a blank one): bin 01 passes
    write_sinf(tmp_path / "n.sinf", [m], bcequ=None, seed=4)
    assert np.array_equal(load(tmp_path / "n.sinf").maps[0], m)
    write_sinf(tmp_path / "k.sinf", [m], bcequ="", seed=4)
    assert np.array_equal(load(tmp_path / "k.sinf").maps[0], m)


def test_reference_dies_count_as_passing(tmp_path: Path, maps) -> None:
    plans = write_sinf(tmp_path / "r.sinf", maps[:1], references=3, extra=["REFPX:4", "REFPY:7"], seed=6)
    assert plans[0]["reference_mask"].sum() == 3
    ds = load(tmp_path / "r.sinf")
    _check(ds, plans)
    assert (ds.bins[0][plans[0]["reference_mask"]] == 255).all()
    assert ds.meta["reference_count"][0] == 3 and ds.meta["untested_count"][0] == 0
    assert (ds.meta["ref_x"][0], ds.meta["ref_y"][0]) == (4, 7)


@pytest.mark.parametrize("width,spaced", [(3, True), (2, False), (3, False)])
def test_code_widths_and_unspaced_rows(tmp_path: Path, maps, width: int, spaced: bool) -> None:
    path = tmp_path / "w.sinf"
    plans = write_sinf(path, maps[1:], width=width, spaced=spaced, untested_share=0.1, references=1, seed=8)
    _check(load(path), plans)


def test_sniff() -> None:
    head = b"\xef\xbb\xbf\r\n# comment\r\nDEVICE:X\r\nLOT:1\r\nWAFER:2\r\nROWCT:3\r\nCOLCT:3\r\n"
    assert sinf.sniff_bytes(head) and detect_fab(head) is sinf
    assert sinf.sniff_bytes(b"WAFER:1\nRowData:01 01\n")
    assert not sinf.sniff_bytes(b"DEVICE:X\nLOT:1\n")  # no ROWCT / COLCT / RowData
    assert not sinf.sniff_bytes(b"hello\nROWCT:3\nCOLCT:3\n")  # the first line is no SINF key
    assert not sinf.sniff_bytes(b"FileVersion 1 2;\nLotID \"A\";\n")
    assert not sinf.sniff_bytes(b"lot,wafer,label\n1,2,Center\n")


# ---------------------------------------------------------------- bad input


def _sinf(tmp_path: Path, body: str, name: str = "bad.sinf") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


HEAD = "DEVICE:D\nLOT:L\nWAFER:1\nFNLOC:0\nROWCT:{r}\nCOLCT:{c}\nBCEQU:01\n"


@pytest.mark.parametrize("rows,header,line,pattern", [
    (["01 01 01", "01 02 01", "01 01 01"], dict(r=2, c=3), 10, r"3 RowData lines where ROWCT:2 \(line 5\)"),
    (["01 01 01", "01 02 01"], dict(r=3, c=3), 9, r"2 RowData lines where ROWCT:3"),
    (["01 01 01", "01 02"], dict(r=2, c=3), 9, r"RowData has 2 codes where COLCT:3 \(line 6\) says 3"),
    (["01 0G 01", "01 02 01"], dict(r=2, c=3), 8, r"code '0G' is not a hex bin code"),
    (["01 01 01", "01 1 01"], dict(r=2, c=3), 9, r"code '1' is a 1-character code among 2-character ones"),
    (["__ __ __", "__ __ __"], dict(r=2, c=3), 8, r"holds no dies"),
    (["01 01 01", "01 01 01"], dict(r="x", c=3), 5, r"ROWCT:x is not a positive whole number"),
])
def test_bad_rows(tmp_path: Path, rows, header, line, pattern) -> None:
    body = HEAD.format(**header) + "".join(f"RowData:{r}\n" for r in rows)
    msg = _error(_sinf(tmp_path, body))
    assert f": line {line}: " in msg and re.search(pattern, msg), msg


def test_bad_header_and_structure(tmp_path: Path) -> None:
    assert "line 1: the wafer whose header starts here has no RowData lines" in _error(
        _sinf(tmp_path, "DEVICE:D\nLOT:L\nROWCT:2\nCOLCT:2\n"))
    assert "line 8: neither a 'KEY:value' header line nor 'RowData:' codes" in _error(
        _sinf(tmp_path, HEAD.format(r=2, c=2) + "01 01\nRowData:01 01\n"))
    assert "BCEQU:0Z holds a code that is not hex" in _error(
        _sinf(tmp_path, HEAD.format(r=1, c=2).replace("BCEQU:01", "BCEQU:0Z") + "RowData:01 01\n"))
    # the second wafer of a file is checked on its own lines
    two = HEAD.format(r=1, c=2) + "RowData:01 01\n" + HEAD.format(r=1, c=2) + "RowData:01 01\nRowData:01 01\n"
    assert ": line 17: 2 RowData lines where ROWCT:1 (line 13)" in _error(_sinf(tmp_path, two))


def test_too_large(tmp_path: Path) -> None:
    path = _sinf(tmp_path, HEAD.format(r=5000, c=3) + "RowData:01 01 01\n")
    with pytest.raises(InputTooLarge, match="line 5: ROWCT:5000 is larger than the limit of 1024"):
        load(path)
    path = _sinf(tmp_path, HEAD.format(r=2, c=2) + "RowData:01 01\nRowData:01 01\n" * 2)
    with pytest.raises(InputTooLarge, match="more than 3 RowData lines"):
        load(path, limits=InputLimits(max_map_side=3))
    path = _sinf(tmp_path, HEAD.format(r=2, c=2) + "RowData:01 01\nRowData:" + "01 " * 500 + "\n")
    with pytest.raises(InputTooLarge, match=r"line 9: a line of more than 1028 characters"):
        load(path, limits=InputLimits(max_map_side=3))


# ---------------------------------------------------------------- shipped samples


def test_shipped_samples_read_back_as_their_maps() -> None:
    files = sorted(SAMPLES_DIR.glob("wafer_sample_*.sinf"))
    assert len(files) >= 2
    val = load(SAMPLES_DIR / "wm811k_sample_val.pkl.xz")
    for f in files:
        ds = load(f)
        assert len(ds) == 1 and ds.notes["format"] == "sinf" and ds.meta["lot"][0] == "WM811K-VAL"
        row = int(ds.meta["wafer"][0].lstrip("W"))
        assert np.array_equal(ds.maps[0], val.maps[row])  # the whole map, off-wafer border included
