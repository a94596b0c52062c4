"""STDF V4 wafer-sort files (adrcs.data.formats.stdf and the record walk in adrcs.data.fab.stdf_records): round
trips, retests, heads and sites, orientation, byte orders, compression, pass/fail sources, skipped parametric
records, bad input."""
from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.stdf_writer import Records, write_stdf
from helpers.wafers import make_wafer

from adrcs.data import load
from adrcs.data.loader import load_bytes
from adrcs.data.fab import FabOptions
from adrcs.data.fab import stdf_records as R
from adrcs.data.formats import detect_fab, stdf
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge
from adrcs.samples import SAMPLES_DIR


@pytest.fixture(scope="module")
def maps() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    padded = np.zeros((18, 21), np.uint8)  # an all-empty border, trimmed on reading (STDF has no extent)
    padded[3:15, 4:16] = make_wafer("scratch", 12, rng)
    return [make_wafer("center", 20, rng), make_wafer("edge_ring", (17, 23), rng), padded,
            make_wafer("donut", 16, rng)]


def _check(ds, plans, key: str = "expected", bins: str = "bins") -> None:
    assert len(ds) == len(plans)
    for got, b, p in zip(ds.maps, ds.bins, plans):
        assert np.array_equal(got, p[key])
        assert np.array_equal(b, p[bins])


def _error(path: Path, cls: type = InputError, **kw) -> str:
    with pytest.raises(cls) as e:
        load(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


# ---------------------------------------------------------------- round trips


def test_round_trip_lot(tmp_path: Path, maps) -> None:
    path = tmp_path / "lot.stdf"
    plans = write_stdf(path, maps, lot="LOT-42", wafer_ids=["07", "W08", "9", "10"], unplaced=2)
    ds = load(path)
    _check(ds, plans)
    assert ds.notes["format"] == "stdf" and ds.bins is not None
    m = ds.meta
    assert m["lot"].tolist() == ["LOT-42"] * 4 and m["wafer"].tolist() == ["7", "W08", "9", "10"]
    assert m["fail_count"].tolist() == [p["fails"] for p in plans]
    assert m["die_count"].tolist() == [p["dies"] for p in plans]
    assert (m["untested_count"] == 0).all() and not m["untested_flag"].any()
    assert (m["unplaced_count"] == 2).all() and (m["prr_count"] == m["die_count"] + 2).all()
    row = m.iloc[0]
    assert (row.part_type, row.test_program, row.program_rev, row.tool, row.tester, row.sublot) == \
        ("PART-A", "PROG-1", "REV7", "NODE-9", "TESTER-X", "SUB-1")
    assert row.start_time == "2023-11-14T22:13:20Z" and row.finish_time == "2023-11-14T22:21:40Z"
    assert m["start_time"][1] == "2023-11-14T22:23:20Z"  # each wafer's own WIR START_T
    assert (row.head_num, row.site_count, row.retest_count, row.bin_kind, row.fab_wafer_id) == \
        (1, 1, 0, "hard", "FAB-07")
    assert (row.notch, row.wafer_size, row.die_width, row.wf_units, row.center_x) == ("DOWN", 300.0, 4.25, "mm", 10)
    assert not m["flip_x"].any() and not m["flip_y"].any()


@pytest.mark.parametrize("kw", [dict(byte_order=">"), dict(gzip=True), dict(compress="bz2"),
                                dict(byte_order=">", gzip=True)], ids=["big", "gzip", "bz2", "big-gzip"])
def test_byte_orders_and_compression(tmp_path: Path, maps, kw) -> None:
    path = tmp_path / "lot.stdf"
    plans = write_stdf(path, maps[:2], retests=3, ptr_per_die=4, **kw)
    ds = load(path)
    _check(ds, plans)
    assert ds.meta["retest_count"].tolist() == [3, 3]


def test_retest_last_or_first(tmp_path: Path, maps) -> None:
    path = tmp_path / "re.stdf"
    plans = write_stdf(path, maps, retests=6, seed=3)
    assert all(not np.array_equal(p["expected"], p["expected_first"]) for p in plans)
    last = load(path)
    _check(last, plans)
    assert last.meta["retest_count"].tolist() == [6] * 4
    first = load(path, fab=FabOptions(retest="first"))
    _check(first, plans, "expected_first", "bins_first")
    assert np.array_equal(load(path, fab=FabOptions.from_cli(retest="last")).maps[1], plans[1]["expected"])


def test_heads_and_sites_interleaved(tmp_path: Path, maps) -> None:
    path = tmp_path / "multi.stdf"
    plans = write_stdf(path, maps, heads=2, sites=4, retests=2, ptr_per_die=3)
    ds = load(path)
    _check(ds, plans)
    assert ds.meta["head_num"].tolist() == [1, 2, 1, 2] and (ds.meta["site_count"] == 4).all()
    # the PRRs of sites 4..1 follow the PIRs of sites 1..4, the two heads' groups alternate
    raw = path.read_bytes()
    pos, _ = R.record_starts(raw, 0, False)
    heads = [raw[p + 4] for p in pos.tolist() if raw[p + 2: p + 4] == b"\x05\x14"]
    assert heads[:8] == [1, 1, 1, 1, 2, 2, 2, 2]


@pytest.mark.parametrize("wcr", [("R", "D"), ("L", "D"), ("R", "U"), ("L", "U"), None])
def test_wcr_orientation(tmp_path: Path, maps, wcr) -> None:
    path = tmp_path / "o.stdf"
    plans = write_stdf(path, maps[1:3], wcr=wcr, origin=(-7, 3))
    ds = load(path)
    _check(ds, plans)  # every orientation reads back as the map drawn
    pos_x, pos_y = wcr or ("R", "D")
    assert ds.meta["flip_x"].tolist() == [pos_x == "L"] * 2 and ds.meta["flip_y"].tolist() == [pos_y == "U"] * 2
    assert ds.meta["notch"][0] == ("DOWN" if wcr else None)


def test_wafer_blocks(tmp_path: Path, maps) -> None:
    for blocks in ("wir", "wrr"):  # WIR only (the next WIR ends a wafer) or WRR only (it names the dies before)
        plans = write_stdf(tmp_path / f"{blocks}.stdf", maps, blocks=blocks, wafer_ids=["A", "B", "C", "D"])
        ds = load(tmp_path / f"{blocks}.stdf")
        _check(ds, plans)
        assert ds.meta["wafer"].tolist() == ["A", "B", "C", "D"]
    # no blocks: one wafer per head, numbered
    plans = write_stdf(tmp_path / "none.stdf", maps[:2], blocks="none", heads=2)
    ds = load(tmp_path / "none.stdf")
    _check(ds, plans)
    assert ds.meta["wafer"].tolist() == ["1", "2"] and ds.meta["head_num"].tolist() == [1, 2]
    # a wafer probed twice (two blocks with one WAFER_ID) is one map; the second pass wins
    m = maps[0]
    again = np.where(m > 0, 3 - m, 0).astype(np.uint8)
    write_stdf(tmp_path / "twice.stdf", [("W1", m), ("W1", again)])
    ds = load(tmp_path / "twice.stdf")
    assert len(ds) == 1 and np.array_equal(ds.maps[0], again) and ds.meta["blocks"][0] == 2
    assert ds.meta["retest_count"][0] == int((m > 0).sum())
    assert np.array_equal(load(tmp_path / "twice.stdf", fab=FabOptions(retest="first")).maps[0], m)


@pytest.mark.parametrize("source", ["hbr", "sbr", "bins"])
def test_pass_fail_from_bin_records(tmp_path: Path, maps, source) -> None:
    """PART_FLG bit 4 (pass/fail flag invalid; bit 3 written the wrong way round): HBR, else SBR pass flags,
    else hard bin 1 passes."""
    path = tmp_path / "pf.stdf"
    plans = write_stdf(path, maps[:2], pf_source=source)
    ds = load(path)
    _check(ds, plans)
    assert ds.meta["pass_fail_from_bins"].tolist() == [p["dies"] for p in plans]


def test_good_bins_option(tmp_path: Path, maps) -> None:
    m = maps[0]
    path = tmp_path / "g.stdf"
    plans = write_stdf(path, [m], pass_bins=(1, 2), fail_bins=(5, 6), seed=4)
    hbin = plans[0]["bins"]
    _check(load(path), plans)  # PART_FLG decides
    expect = plans[0]["expected"]
    for good in ((1, 2), (1,), (1, 2, 5)):
        got = load(path, fab=FabOptions(good_bins=good)).maps[0]
        assert np.array_equal(got, np.where(expect == 0, 0, np.where(np.isin(hbin, good), 1, 2)))
    assert load(path, fab=FabOptions.from_cli(good_bins="1,2")).meta["pass_fail_from_bins"][0] == 0


# ---------------------------------------------------------------- the record walk


def test_parametric_records_are_skipped(tmp_path: Path, maps, monkeypatch) -> None:
    """PTR / MPR / FTR, DTR / GDR and 40 kB records read the same, also cut into small chunks and lanes."""
    plain = write_stdf(tmp_path / "a.stdf", maps, retests=2, seed=5)
    busy = write_stdf(tmp_path / "b.stdf", maps, retests=2, seed=5, ptr_per_die=9, param_kinds=("PTR", "MPR", "FTR"),
                      extras=True, sites=2)
    fast = write_stdf(tmp_path / "c.stdf", maps, retests=2, seed=5, ptr_per_die=40, byte_order=">", heads=2)
    base = load(tmp_path / "a.stdf")
    _check(base, plain)
    _check(load(tmp_path / "b.stdf"), busy)
    _check(load(tmp_path / "c.stdf"), fast)
    monkeypatch.setattr(R, "CHUNK", 70_001)  # records split across chunks, carried over
    monkeypatch.setattr(R, "SEGMENT", 512)
    monkeypatch.setattr(R, "MIN_LANES_BYTES", 1024)
    for name, plans in (("b.stdf", busy), ("c.stdf", fast)):
        _check(load(tmp_path / name), plans)


@pytest.mark.parametrize("seed", range(6))
def test_walk_equals_plain_loop(seed: int, monkeypatch) -> None:
    """The lane walk gives the plain loop's record starts and stop on any bytes, STDF-like or garbage."""
    monkeypatch.setattr(R, "MIN_LANES_BYTES", 0)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5_000, 200_000))
    if seed % 3 == 0:
        buf = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif seed % 3 == 1:
        buf = (rng.integers(0, 4, n, dtype=np.uint8) * (rng.random(n) < 0.3)).astype(np.uint8).tobytes()
    else:
        recs = Records("<" if seed < 3 else ">")
        parts = [recs.rec(*rng.choice([(15, 10), (5, 10), (5, 20), (50, 30), (7, 7)]),
                          rng.integers(0, 256, int(rng.choice([0, 2, 12, 12, 12, 40, 900, 5000])), np.uint8).tobytes())
                 for _ in range(n // 60)]
        buf = b"".join(parts)[: n]
    for big in (False, True):
        for segment in (64, 512, 4096):
            monkeypatch.setattr(R, "SEGMENT", segment)
            want: list[int] = []
            stop, _ = R.walk_scalar(buf, 0, len(buf), big, out=want)
            got, got_stop = R.record_starts(buf, 0, big)
            assert got_stop == stop and got.tolist() == want


def test_sniff(tmp_path: Path, maps) -> None:
    write_stdf(tmp_path / "l.stdf", maps[:1])
    write_stdf(tmp_path / "b.stdf", maps[:1], byte_order=">")
    for name in ("l.stdf", "b.stdf"):
        head = (tmp_path / name).read_bytes()[:4096]
        assert stdf.sniff_bytes(head) and detect_fab(head) is stdf
    assert not stdf.sniff_bytes(b"\x02\x00\x00\x0a")  # too short
    assert not stdf.sniff_bytes(b"\x02\x00\x01\x0a\x02\x04")  # a MIR first
    assert not stdf.sniff_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00")  # a pickle
    assert not stdf.sniff_bytes(b"DEVICE:X\nROWCT:3\n")


# ---------------------------------------------------------------- bad input


def _records(path: Path, *bodies: bytes) -> Path:
    r = Records("<")
    path.write_bytes(r.far() + r.mir("L", "P", "J", "N", "T") + b"".join(bodies))
    return path


def test_truncated_files(tmp_path: Path, maps) -> None:
    write_stdf(tmp_path / "ok.stdf", maps[:1], ptr_per_die=3)
    data = (tmp_path / "ok.stdf").read_bytes()
    pos, _ = R.record_starts(data, 0, False)
    p = int(pos[len(pos) // 2])  # cut inside a record
    assert data[p + 2: p + 4] in (b"\x0f\x0a", b"\x05\x0a", b"\x05\x14")
    (tmp_path / "cut.stdf").write_bytes(data[: p + 7])
    msg = _error(tmp_path / "cut.stdf")
    assert re.search(rf": record {len(pos) // 2 + 1} \((PTR|PIR|PRR)\) at byte {p}: REC_LEN \d+ runs past the end "
                     r"of the file \(only 3 of its \d+ bytes are there; truncated\)", msg), msg
    (tmp_path / "hdr.stdf").write_bytes(data[: p + 2])
    assert f": record {len(pos) // 2 + 1} at byte {p}: the file ends inside the record's header" in \
        _error(tmp_path / "hdr.stdf")
    with pytest.raises(InputError, match=r"^f: record 1 \(FAR\) at byte 0: the file ends inside the FAR \(4 of 6"):
        stdf.read_stream(io.BytesIO(data[:4]), "f", FabOptions(), InputLimits())  # too short to be sniffed
    # a REC_LEN far past the end of a complete file
    (tmp_path / "len.stdf").write_bytes(data + struct.pack("<HBB", 60_000, 50, 30) + b"abc")
    assert f": record {len(pos) + 1} (DTR) at byte {len(data)}: REC_LEN 60000 runs past the end" in \
        _error(tmp_path / "len.stdf")


def test_structure_errors(tmp_path: Path) -> None:
    r = Records("<")
    far_mir = len(r.far() + r.mir("L", "P", "J", "N", "T"))
    wir = r.wir(1, "W", 0)
    path = _records(tmp_path / "nopir.stdf", wir, r.pir(1, 1), r.prr(1, 1, 0, 1, 1, 0, 0), r.prr(1, 2, 0, 1, 1, 1, 0))
    at = far_mir + len(wir) + len(r.pir(1, 1)) + len(r.prr(1, 1, 0, 1, 1, 0, 0))
    assert _error(path).endswith(f": record 6 (PRR) at byte {at}: a PRR for head 1 site 2 without a PIR before it")
    path = _records(tmp_path / "nocoord.stdf", wir, r.pir(1, 1), r.prr(1, 1, 0, 1, 1, -32768, -32768),
                    r.wrr(1, "W", 0, 1, 1))
    assert _error(path).endswith(f": record 3 (WIR) at byte {far_mir}: wafer 'W' has no die coordinates (all its 1 "
                                 "PRRs have X_COORD / Y_COORD -32768)")
    path = _records(tmp_path / "noparts.stdf", wir, r.wrr(1, "W", 0, 0, 0), r.mrr())
    assert _error(path).endswith(": holds no part results (PRR records): not wafer-sort data")
    path = _records(tmp_path / "short.stdf", r.rec(5, 10, b"\x01"))
    assert _error(path).endswith(f": record 3 (PIR) at byte {far_mir}: REC_LEN 1 is too short for HEAD_NUM and "
                                 "SITE_NUM")
    v3 = tmp_path / "v3.stdf"
    v3.write_bytes(r.far(version=3) + b"\x00" * 40)
    assert _error(v3).endswith(": record 1 (FAR) at byte 0: STDF_VER is 3: this is an STDF V3 file; only STDF V4 is "
                               "read (convert it to V4 first)")


def test_limits(tmp_path: Path, maps) -> None:
    write_stdf(tmp_path / "lot.stdf", maps)
    msg = _error(tmp_path / "lot.stdf", InputTooLarge, limits=InputLimits(max_maps=2))
    assert re.search(r": record \d+ \(WIR\) at byte \d+: more than the limit of 2 wafers$", msg), msg
    _error(tmp_path / "lot.stdf", InputTooLarge, limits=InputLimits(max_uncompressed_bytes=5000))
    _error(tmp_path / "lot.stdf", InputTooLarge, limits=InputLimits(max_map_side=19))


# ---------------------------------------------------------------- shipped sample, independent reader


def test_shipped_sample_and_labels() -> None:
    ds = load(SAMPLES_DIR / "lot_sample.stdf.gz")
    labels = pd.read_csv(SAMPLES_DIR / "lot_sample_labels.csv", dtype=str)
    assert len(ds) == len(labels) == 25 and ds.notes["format"] == "stdf"
    assert ds.meta["wafer"].tolist() == labels["wafer"].tolist() and (ds.meta["lot"] == labels["lot"]).all()
    val = load(SAMPLES_DIR / "wm811k_sample_val.pkl.xz")
    for m, wafer, label in zip(ds.maps, labels["wafer"], labels["label"]):
        src = val.maps[int(wafer.lstrip("W"))]
        rows, cols = np.flatnonzero(src.any(axis=1)), np.flatnonzero(src.any(axis=0))
        assert np.array_equal(m, src[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])
        assert val.class_names[val.labels[int(wafer.lstrip("W"))]] == label


def test_independent_reader_agrees(tmp_path: Path, maps) -> None:
    """stdf-convert (MIT; the Rust rust-stdf parser; not a dependency) finds the test writer's PRRs where ours
    puts the dies: same places, pass / fail and hard bins."""
    stdf_convert = pytest.importorskip("stdf_convert")
    path = tmp_path / "x.stdf"
    write_stdf(path, maps[:2], heads=2, sites=2, ptr_per_die=5, param_kinds=("PTR", "MPR", "FTR"), byte_order=">",
               extras=True)
    prr = stdf_convert.tables(str(path), ["PRR"])["PRR"].to_pandas()
    ds = load(path)
    for i, head in enumerate((1, 2)):
        t = prr[prr["HEAD_NUM"] == head]
        x, y = t["X_COORD"].to_numpy(int), t["Y_COORD"].to_numpy(int)
        fail = np.array([(f[0] if isinstance(f, bytes) else int(f)) & 8 for f in t["PART_FLG"]]) > 0
        m = np.zeros((y.max() - y.min() + 1, x.max() - x.min() + 1), np.uint8)
        b = np.full(m.shape, -1)
        m[y - y.min(), x - x.min()] = np.where(fail, 2, 1)
        b[y - y.min(), x - x.min()] = t["HARD_BIN"].to_numpy(int)
        assert np.array_equal(ds.maps[i], m) and np.array_equal(ds.bins[i], b)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_independent_writer(tmp_path: Path, maps, endian: str) -> None:
    """A lot written record by record by Semi-ATE-STDF (MIT; not a dependency) reads back as its maps."""
    S = pytest.importorskip("Semi_ATE.STDF")

    def rec(cls, **values):
        r = cls(version="V4", endian=endian)
        for k, v in values.items():
            r.set_value(k, v)
        return r.__repr__()  # Semi-ATE's packed record

    out = [rec(S.FAR), rec(S.MIR, LOT_ID="SEMI-LOT", PART_TYP="P1", START_T=1_700_000_000),
           rec(S.WCR, POS_X="L", POS_Y="U", WF_FLAT="R")]
    for k, m in enumerate(maps[:2]):
        out.append(rec(S.WIR, HEAD_NUM=1, WAFER_ID=f"S{k}"))
        for r, c in zip(*np.nonzero(m)):
            fail = m[r, c] == 2
            out += [rec(S.PIR, HEAD_NUM=1, SITE_NUM=1),
                    rec(S.PTR, TEST_NUM=7, HEAD_NUM=1, SITE_NUM=1, RESULT=0.5, TEST_TXT="vdd"),
                    rec(S.PRR, HEAD_NUM=1, SITE_NUM=1, PART_FLG=["0", "0", "0", "1" if fail else "0"] + ["0"] * 4,
                        HARD_BIN=6 if fail else 1, SOFT_BIN=60 if fail else 10, X_COORD=-int(c), Y_COORD=-int(r))]
        out.append(rec(S.WRR, HEAD_NUM=1, WAFER_ID=f"S{k}"))
    out.append(rec(S.MRR))
    path = tmp_path / "semi.stdf"
    path.write_bytes(b"".join(out))
    ds = load(path)
    assert ds.meta["wafer"].tolist() == ["S0", "S1"] and (ds.meta["lot"] == "SEMI-LOT").all()
    assert ds.meta["flip_x"].all() and ds.meta["flip_y"].all() and ds.meta["notch"][0] == "RIGHT"
    for got, m in zip(ds.maps, maps):  # x = -column grows to the left, y = -row upward: the map as drawn
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        assert np.array_equal(got, m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])


def test_short_records_and_upload(tmp_path: Path, maps) -> None:
    """Fields a record leaves out (a shorter REC_LEN, as the standard allows) read as missing; uploads read
    from memory like files."""
    r = Records("<")
    full = r.prr(1, 1, 8, 5, 105, 2, 3)
    cut = [r.rec(5, 20, full[4: 4 + k]) for k in (3, 11, 13, 15)]  # PART_FLG | .. X_COORD | .. Y_COORD | no TEST_T
    path = _records(tmp_path / "short.stdf", r.wir(1, "W", 0),
                    *[r.pir(1, 1) + c for c in cut], r.rec(1, 10, b""), r.rec(2, 30, b"\x00" * 5))
    ds = load(path)
    assert ds.meta["prr_count"][0] == 4 and ds.meta["unplaced_count"][0] == 2  # only the two last have X and Y
    assert ds.maps[0].tolist() == [[2]] and ds.bins[0].tolist() == [[5]] and ds.meta["retest_count"][0] == 1
    assert ds.meta["lot"][0] == "" and ds.meta["notch"][0] is None  # an empty MIR, a cut WCR
    plans = write_stdf(tmp_path / "u.stdf", maps[:2], gzip=True, ptr_per_die=3)
    up = load_bytes((tmp_path / "u.stdf").read_bytes(), "lot.stdf.gz", limits=InputLimits.for_service(1 << 20))
    _check(up, plans)
    assert up.notes["source"] == "lot.stdf.gz"
