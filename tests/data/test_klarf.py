"""KLARF 1.2 / 1.8 defect files (adrcs.data.formats.klarf): round trips, plans, options, meta, bad input."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers.klarf_writer import circle_map, trim, write_klarf
from helpers.wafers import make_wafer

from adrcs.data import load
from adrcs.data.fab import FabOptions
from adrcs.data.fab import klarf_records, klarf_table
from adrcs.data.formats import klarf
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge
from adrcs.samples import SAMPLES_DIR

VERSIONS = ("1.2", "1.8")


@pytest.fixture(scope="module")
def maps() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [make_wafer("center", 20, rng), make_wafer("edge_ring", (25, 31), rng), make_wafer("scratch", 12, rng),
            make_wafer("none", 9, rng)]


def _same_maps(ds, maps) -> None:
    assert len(ds) == len(maps)
    for got, want in zip(ds.maps, maps):
        assert np.array_equal(trim(got), trim(want))


def _defect_counts(plan: dict) -> Counter:
    return Counter((d["XINDEX"], d["YINDEX"]) for d in plan["defects"])


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_several_wafers(tmp_path: Path, maps, version: str) -> None:
    path = tmp_path / f"lot.{version}.klarf"
    plans = write_klarf(path, maps, version=version, lot="LOT-7")
    ds = load(path)
    _same_maps(ds, maps)
    assert ds.notes["format"] == "klarf"
    assert ds.meta["lot"].tolist() == ["LOT-7"] * len(maps)
    assert ds.meta["wafer"].tolist() == [p["wafer"] for p in plans]
    assert ds.meta["untested_count"].tolist() == [0] * len(maps)
    assert ds.meta["fail_count"].tolist() == [p["fails"] for p in plans]
    assert ds.meta["defect_count"].tolist() == [len(p["defects"]) for p in plans]
    assert ds.meta["flip_y"].all() and not ds.meta["flip_x"].any()
    # bins: the defect count of each die (-1 off the wafer)
    for b, p in zip(ds.bins, plans):
        m = p["map"]
        counts = np.zeros(m.shape, np.int64)
        for (x, y), n in _defect_counts(p).items():
            counts[m.shape[0] - 1 - y, x] = n
        rows, cols = np.flatnonzero((m > 0).any(1)), np.flatnonzero((m > 0).any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        assert np.array_equal(b, np.where(m[box] > 0, counts[box], -1))


def test_orientation_y_grows_upward(tmp_path: Path) -> None:
    m = np.ones((4, 3), np.uint8)
    m[0, 0] = 2  # top-left die: XINDEX 0, YINDEX 3 (the largest y)
    plans = write_klarf(tmp_path / "o.klarf", [m], defects_per_fail=(1, 1))
    assert {(d["XINDEX"], d["YINDEX"]) for d in plans[0]["defects"]} == {(0, 3)}
    assert load(tmp_path / "o.klarf").maps[0][0, 0] == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_batches_across_table_boundaries(tmp_path: Path, maps, version: str, monkeypatch) -> None:
    """Tables are read in batches: tiny batches give the same wafers (1.2 rows with IMAGELIST continuation lines)."""
    path = tmp_path / "b.klarf"
    write_klarf(path, maps, version=version, defects_per_fail=(2, 4))
    whole = load(path)
    monkeypatch.setattr(klarf_table, "BATCH", 7)
    small = load(path)
    _same_maps(small, maps)
    assert small.meta["defects"].tolist() == whole.meta["defects"].tolist()


def test_gzip_crlf_bom(tmp_path: Path, maps) -> None:
    path = tmp_path / "lot.klarf.gz"
    write_klarf(path, maps[:2], compress=True, crlf=True, bom=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    _same_maps(load(path), maps[:2])


def test_column_order_and_extra_columns(tmp_path: Path, maps) -> None:
    spec = ["FOO", "YINDEX", "CLASSNUMBER", "XREL", "DEFECTID", "XINDEX", "YREL", "BAR"]
    plans = write_klarf(tmp_path / "c.klarf", maps[:2], spec=spec)
    ds = load(tmp_path / "c.klarf")
    _same_maps(ds, maps[:2])
    rows = json.loads(ds.meta["defects"][0])
    want = [[d["XINDEX"], d["YINDEX"], d["XREL"], d["YREL"], None, None, d["CLASSNUMBER"]] for d in plans[0]["defects"]]
    assert rows == [[int(v) if isinstance(v, float) and v.is_integer() else v for v in r] for r in want]


def test_two_lots_in_one_12_file(tmp_path: Path, maps) -> None:
    """Lot statements after a wafer's DefectList belong to the wafers that follow."""
    write_klarf(tmp_path / "a.klarf", maps[:1], lot="LA", step="S-A")
    write_klarf(tmp_path / "b.klarf", maps[1:3], lot="LB", step="S-B")
    a = (tmp_path / "a.klarf").read_text().replace("EndOfFile;\n", "")
    b = (tmp_path / "b.klarf").read_text().split("\n", 1)[1]  # without its FileVersion line
    (tmp_path / "ab.klarf").write_text(a + b)
    ds = load(tmp_path / "ab.klarf")
    _same_maps(ds, maps[:3])
    assert ds.meta["lot"].tolist() == ["LA", "LB", "LB"]
    assert ds.meta["step"].tolist() == ["S-A", "S-B", "S-B"]


def test_one_defect_record_spec_for_all_wafers(tmp_path: Path, maps) -> None:
    """A wafer without its own DefectRecordSpec uses the one seen last (a file may give it once)."""
    write_klarf(tmp_path / "s.klarf", maps[:3])
    lines = (tmp_path / "s.klarf").read_text().split("\n")
    specs = [i for i, ln in enumerate(lines) if ln.startswith("DefectRecordSpec")]
    (tmp_path / "one.klarf").write_text("\n".join(ln for i, ln in enumerate(lines) if i not in specs[1:]))
    _same_maps(load(tmp_path / "one.klarf"), maps[:3])


# ---------------------------------------------------------------- options, plans, geometry


@pytest.mark.parametrize("version", VERSIONS)
def test_min_defects(tmp_path: Path, maps, version: str) -> None:
    path = tmp_path / "m.klarf"
    plans = write_klarf(path, maps[:2], version=version, defects_per_fail=(1, 3))
    ds = load(path, fab=FabOptions(min_defects=2))
    for m, got, p in zip(maps, ds.maps, plans):
        counts = _defect_counts(p)
        assert int((got == 2).sum()) == sum(1 for n in counts.values() if n >= 2) < int((m == 2).sum())
        assert int((got > 0).sum()) == int((m > 0).sum())
    assert load(path).meta["fail_count"].tolist() == [p["fails"] for p in plans]


@pytest.mark.parametrize("version", VERSIONS)
def test_sampled_plan_leaves_dies_untested(tmp_path: Path, version: str) -> None:
    pitch = (5000.0, 4000.0)
    disc = circle_map(24, pitch)
    m = disc.copy()
    m[(np.arange(24)[:, None] + np.arange(24)[None, :]) % 7 == 0] *= 2  # some failing dies
    path = tmp_path / "s.klarf"
    plans = write_klarf(path, [m, m], version=version, pitch=pitch, sampled=True, sample_share=0.5, seed=3)
    ds = load(path)
    _same_maps(ds, [m, m])
    untested = [p["dies"] - len(p["plan"]) for p in plans]
    assert ds.meta["untested_count"].tolist() == untested and min(untested) > 0.2 * int((m > 0).sum())
    assert ds.meta["untested_flag"].all() and ds.notes["untested_flagged"] == 2
    tested = int((m > 0).sum()) - untested[0]
    assert ds.meta["yield"][0] == pytest.approx((tested - int((m == 2).sum())) / tested)


def test_sampled_plan_without_diameter_is_the_plan(tmp_path: Path) -> None:
    """Without SampleSize the wafer is the plan's dies (and the defect dies): nothing untested."""
    m = make_wafer("center", 16, np.random.default_rng(1))
    plans = write_klarf(tmp_path / "n.klarf", [m], sampled=True, diameter=None, seed=2)
    ds = load(tmp_path / "n.klarf")
    assert ds.meta["untested_count"][0] == 0
    assert int((ds.maps[0] > 0).sum()) == len(plans[0]["plan"]) < int((m > 0).sum())
    assert int((ds.maps[0] == 2).sum()) == plans[0]["fails"]


@pytest.mark.parametrize("version", VERSIONS)
def test_no_plan_means_whole_wafer_inspected(tmp_path: Path, version: str) -> None:
    pitch = (5000.0, 5000.0)
    m = circle_map(18, pitch)
    m[8:10, 3:12] = 2
    write_klarf(tmp_path / "p.klarf", [m], version=version, pitch=pitch, with_plan=False)
    ds = load(tmp_path / "p.klarf")
    _same_maps(ds, [m])
    assert ds.meta["untested_count"][0] == 0


def test_no_plan_no_diameter_gives_the_defect_dies(tmp_path: Path) -> None:
    m = np.ones((6, 6), np.uint8)
    m[2, 1] = m[4, 4] = 2
    write_klarf(tmp_path / "d.klarf", [m], with_plan=False, diameter=None)
    got = load(tmp_path / "d.klarf").maps[0]
    assert got.shape == (3, 4) and int((got == 2).sum()) == 2 and int((got == 1).sum()) == 0


def test_geometry_that_misses_the_plan_is_ignored(tmp_path: Path, maps) -> None:
    """A centre (or units) putting the plan's dies outside the wafer circle: the wafer is the plan."""
    write_klarf(tmp_path / "g.klarf", maps[:2])
    text = re.sub(r"SampleCenterLocation [^;]*;", "SampleCenterLocation -9.0e+05 -9.0e+05;",
                  (tmp_path / "g.klarf").read_text())
    (tmp_path / "g.klarf").write_text(text)
    ds = load(tmp_path / "g.klarf")
    _same_maps(ds, maps[:2])
    assert ds.meta["untested_count"].tolist() == [0, 0]


# ---------------------------------------------------------------- meta


@pytest.mark.parametrize("version", VERSIONS)
def test_meta_columns(tmp_path: Path, maps, version: str) -> None:
    plans = write_klarf(tmp_path / "meta.klarf", maps[:2], version=version, lot="L9", step="ETCH", device="DX",
                        wafer_ids=["A01", "A02"])
    meta = load(tmp_path / "meta.klarf").meta
    row = meta.iloc[1]
    assert (row["lot"], row["wafer"], row["slot"], row["step"], row["part_type"]) == ("L9", "A02", 2, "ETCH", "DX")
    assert row["tool"] == "KLA 2367 TOOL01" and row["start_time"] == "2024-03-05T14:30:00"
    assert row["notch"] == "DOWN"
    defects = json.loads(row["defects"])
    assert len(defects) == row["defect_count"] == len(plans[1]["defects"])
    first = plans[1]["defects"][0]
    assert defects[0][:2] == [first["XINDEX"], first["YINDEX"]] and defects[0][6] == first["CLASSNUMBER"]
    assert defects[0][2:6] == pytest.approx([first[c] for c in ("XREL", "YREL", "XSIZE", "YSIZE")])
    want = Counter(str(d["CLASSNUMBER"]) for d in plans[1]["defects"])
    assert json.loads(row["defect_classes"]) == dict(want)
    assert json.loads(row["class_names"])["7"] == "Scratch"


# ---------------------------------------------------------------- sniffing and shipped samples


@pytest.mark.parametrize("head,ok", [
    (b"FileVersion 1 2;\nFileTimestamp 01-01-24 00:00:00;", True),
    (b"\r\n\r\n  fileversion 1 1 ;\r\n", True),
    (b"\xef\xbb\xbfFileVersion 1 2;", True),
    (b'Record FileRecord "1.8"\n{', True),
    (b'\n\n  RECORD  FileRecord "1.8"', True),
    (b"DEVICE:ABC\nLOT:1", False),
    (b"FileVersion is 2", False),
    (b"\x80\x04\x95", False),
])
def test_sniff_bytes(head: bytes, ok: bool) -> None:
    assert klarf.sniff_bytes(head) is ok


@pytest.mark.parametrize("file,version,n", [("defects_sample.klarf", "1.2", 10), ("defects_sample_18.klarf", "1.8", 4)])
def test_shipped_samples_match_their_source_maps(file: str, version: str, n: int) -> None:
    """The samples are written by klarfio (an independent writer, scripts/make_klarf_samples.py)."""
    path = SAMPLES_DIR / file
    assert path.stat().st_size < 200_000
    head = path.read_bytes()[:40].decode()
    assert head.startswith("FileVersion 1 2;" if version == "1.2" else 'Record FileRecord "1.8"')
    src = load(SAMPLES_DIR / "wm811k_sample_val.pkl.xz")
    ds = load(path)
    assert len(ds) == n and set(ds.meta["lot"]) == {"WM811K-VAL"}
    for got, wafer in zip(ds.maps, ds.meta["wafer"]):
        assert np.array_equal(got, trim(src.maps[int(wafer[1:])]))
    assert (ds.meta["defect_count"] >= ds.meta["fail_count"]).all() and ds.meta["untested_count"].eq(0).all()


def test_klarfio_reads_our_18_files(tmp_path: Path, maps) -> None:
    """Cross-check with the independent klarfio reader (GPL, optional: skipped when not installed)."""
    klarfio = pytest.importorskip("klarfio")
    plans = write_klarf(tmp_path / "x.klarf", maps[:2], version="1.8", lot="LX")
    data = klarfio.klarf(str(tmp_path / "x.klarf")).data["FileRecord_1.8"]["LotRecord_LX"]
    for p in plans:
        w = data[f"WaferRecord_{p['wafer']}"]
        assert len(w["DefectList"]["Data"]) == len(p["defects"])
        assert len(w["TestRecord_1"]["SampleTestPlanList"]["Data"]) == len(p["plan"])


# ---------------------------------------------------------------- bad input

_HEAD = "FileVersion 1 2;\nLotID \"L\";\nWaferID \"W1\";\n"
_SPEC = "DefectRecordSpec 5 DEFECTID XREL YREL XINDEX YINDEX;\n"
_18 = 'Record FileRecord "1.8"\n{\n  Record LotRecord "L"\n  {\n    Record WaferRecord "W1"\n    {\n'
_18_END = "    }\n  }\n}\nEndOfFile;\n"
_18_DEFECTS = "      List DefectList\n      {\n        Columns 3 { int32 DEFECTID, int32 XINDEX, int32 YINDEX }\n"


@pytest.mark.parametrize("text,line,problem", [
    (_HEAD + "SampleTestPlan 1\n 0 0;\nDefectList\n 1 2 3 0 0;\nEndOfFile;\n", 6, "no DefectRecordSpec"),
    (_HEAD + "DefectRecordSpec 6 DEFECTID XREL YREL XINDEX YINDEX;\n", 4, "says 6 columns but names 5"),
    (_HEAD + _SPEC + "DefectList\n 1 2 3 0 0\n 2 2 3 0\n 3 1 1 1 1;\nEndOfFile;\n", 7, "values left over"),
    (_HEAD + _SPEC + "DefectList\n 1 2 3 0 0\n 2 2 3 abc 0;\nEndOfFile;\n", 7, "XINDEX 'abc' is not a number"),
    (_HEAD + _SPEC + "DefectList\n 1 2 3 0.5 0;\nEndOfFile;\n", 6, "not a die index"),
    (_HEAD + "DefectRecordSpec 3 DEFECTID XREL YREL;\nDefectList\n 1 2 3;\nEndOfFile;\n", 5, "no XINDEX / YINDEX"),
    (_HEAD + "Slot 1;\nEndOfFile;\n", 3, "no die coordinates"),
    (_HEAD + "SampleTestPlan 2\n 0 0\n 1 0\n", 4, "not terminated by ';' (the file ends at line 6)"),
    (_HEAD + "SampleTestPlan 3\n 0 0\n 1 0;\n", 4, "says 3 dies but lists 2"),
    (_HEAD + "SampleTestPlan 1\n 0 x;\n", 5, "YINDEX 'x' is not a number"),
    (_HEAD + 'StepID "open\nEndOfFile;\n', 4, "unterminated string"),
    (_HEAD + "} SampleTestPlan 1 0 0;\n", 4, "expected a KLARF keyword"),
    (_18 + _18_DEFECTS + "        Data 1\n        {\n          1 2 3;\n        }\n      }\n    }\n  }\n", 1,
     "Record FileRecord is not closed by '}' (braces unbalanced"),
    (_18 + _18_DEFECTS + "        Data 2\n        {\n          1 2 3;\n          2 2;\n        }\n      }\n"
      + _18_END, 13,
     "row has 2 values, its Columns name 3"),
    (_18 + _18_DEFECTS + "        Data 2\n        {\n          1 2 3;\n        }\n      }\n" + _18_END, 10,
     "says 2 rows but holds 1"),
    (_18 + _18_DEFECTS + "        Data 1\n        {\n          1 2.5 3;\n        }\n      }\n" + _18_END, 12,
     "not a die index"),
    (_18 + "    }\n  }\n}\n}\nEndOfFile;\n", 10, "closes no Record"),
    (_18 + "    }\n  }\nEndOfFile;\n", 1, "Record FileRecord is not closed by '}' before EndOfFile on line 9"),
    (_18 + "      List DefectList\n      {\n", 7, "List DefectList is not closed by '}'"),
    (_18 + _18_DEFECTS + "        Data 1\n        {\n          1 2 3;\n", 10, "Data of DefectList has no closing '}'"),
    (_18 + "      Field SlotNumber 1 {1}\n" + _18_END, 5, "no die coordinates"),
    (_18 + "      Bogus 1\n" + _18_END, 7, "expected Record, Field, List"),
    ('Record FileRecord "1.8"\n{\n}\nRecord WaferRecord "W1"\n{\n}\n', 4, "Record WaferRecord lies outside the Fi"),
    (_18 + "      Field SlotNumber 1 {1\n      Field X 1 {2}\n" + _18_END, 7,
     "Field SlotNumber is not closed by '}' before 'Field'"),
])
def test_bad_input_is_one_line_naming_file_and_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "bad.klarf"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: line {line}: "), msg
    assert problem in msg, msg


def test_too_many_defects_per_wafer(tmp_path: Path, maps, monkeypatch) -> None:
    write_klarf(tmp_path / "big.klarf", maps[:1], defects_per_fail=(3, 3))
    monkeypatch.setattr(klarf_records, "MAX_DEFECTS", 20)
    with pytest.raises(InputTooLarge, match=re.escape("lists more than 20 defects (the limit per wafer)")):
        load(tmp_path / "big.klarf")


def test_wafer_far_larger_than_the_map_limit(tmp_path: Path, maps) -> None:
    write_klarf(tmp_path / "w.klarf", maps[:1], pitch=(10.0, 10.0), diameter=300.0)
    with pytest.raises(InputTooLarge, match="spans 30000 dies per side"):
        load(tmp_path / "w.klarf")


def test_uncompressed_cap(tmp_path: Path, maps) -> None:
    write_klarf(tmp_path / "cap.klarf.gz", maps, compress=True)
    with pytest.raises(InputTooLarge, match="limit"):
        load(tmp_path / "cap.klarf.gz", limits=InputLimits(max_uncompressed_bytes=5000))
