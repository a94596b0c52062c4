"""SEMI E142 / G85 XML bin maps (adrcs.data.formats.e142): round trips, bin types, untested dies, good bins,
orientation, meta, XML attacks and bad input."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.sinf_writer import UNTESTED_BIN, write_e142, write_g85
from helpers.wafers import make_wafer

from adrcs.data import load
from adrcs.data.fab import FabOptions
from adrcs.data.formats import detect_fab, e142
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge
from adrcs.samples import SAMPLES_DIR

BIN_TYPES = ("HexaDecimal", "Decimal", "ASCII", "Integer2")
WRITERS = {"e142": write_e142, "g85": write_g85}


@pytest.fixture(scope="module")
def maps() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    padded = np.zeros((15, 18), np.uint8)
    padded[1:13, 4:16] = make_wafer("donut", 12, rng)
    return [make_wafer("edge_loc", 18, rng), padded, make_wafer("random", (9, 13), rng)]


def _check(ds, plans) -> None:
    assert len(ds) == len(plans)
    for got, bins, p in zip(ds.maps, ds.bins, plans):
        assert got.shape == p["map"].shape
        assert np.array_equal(got, p["expected"])
        assert np.array_equal(bins, p["bins"])


def _error(path: Path, **kw) -> str:
    with pytest.raises(InputError) as e:
        load(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("variant", sorted(WRITERS))
@pytest.mark.parametrize("bin_type", BIN_TYPES)
def test_round_trip_bin_types(tmp_path: Path, maps, variant: str, bin_type: str) -> None:
    path = tmp_path / f"lot_{variant}.xml"
    plans = WRITERS[variant](path, maps, bin_type=bin_type, lot="LOT-3", untested_share=0.05, seed=2)
    ds = load(path)
    _check(ds, plans)
    assert ds.notes["format"] == "e142"
    m = ds.meta
    assert m["format_variant"].tolist() == [variant] * 3 and m["bin_type"][0] == bin_type
    assert m["lot"].tolist() == ["LOT-3"] * 3 and m["wafer"].tolist() == ["1", "2", "3"]
    assert m["untested_count"].tolist() == [p["untested"] for p in plans]
    assert m["fail_count"].tolist() == [p["fails"] for p in plans]
    assert m["part_type"][0] == "DEV-A" and m["orientation"][0] == 180


def test_e142_meta_orientation_and_namespaces(tmp_path: Path, maps) -> None:
    path = tmp_path / "e.xml"
    write_e142(path, maps[:2], origin="LowerLeft", axis="UpRight", namespace=None, wafer_ids=["W07", "W08"])
    ds = load(path)
    m = ds.meta
    assert m["wafer"].tolist() == ["W07", "W08"] and m["slot"].tolist() == [1, 2]
    assert m["origin"][0] == "LowerLeft" and m["axis"][0] == "UpRight" and m["map_name"][0] == "SortGrade"
    assert json.loads(m["reference_dies"][0]) == [[0, 0]] and json.loads(m["bin_names"][0])["1"] == "bin 1"
    # LowerLeft / UpRight: the picture is as written, the bottom row holds die y 0 (y grows upward)
    assert m["flip_y"].all() and not m["flip_x"].any() and m["die_y0"][0] == maps[0].shape[0] - 1
    assert np.array_equal(ds.maps[0], maps[0])
    write_e142(path, maps[:1], origin="UpperRight", axis="DownLeft")
    d2 = load(path)
    assert d2.meta["flip_x"][0] and not d2.meta["flip_y"][0] and d2.meta["die_x0"][0] == maps[0].shape[1] - 1
    assert np.array_equal(d2.maps[0], maps[0])


def test_g85_single_map_root_meta_gzip(tmp_path: Path, maps) -> None:
    path = tmp_path / "g.xml.gz"
    plans = write_g85(path, maps[:1], bin_type="HexaDecimal", spaced=False, gz=True, wafer_ids=["05"])
    ds = load(path)
    _check(ds, plans)
    m = ds.meta
    assert m["wafer"][0] == "5" and m["start_time"][0] == "2024-03-05T14:30:00" and m["supplier"][0] == "FAB1"
    assert m["wafer_size"][0] == 300 and m["origin"][0] == "2" and json.loads(m["reference_dies"][0]) == [[1, 2]]
    assert not m["flip_x"][0] and not m["flip_y"][0]


def test_untested_flag(tmp_path: Path, maps) -> None:
    plans = write_e142(tmp_path / "u.xml", maps[:2], untested_share=0.4, seed=5)
    ds = load(tmp_path / "u.xml")
    _check(ds, plans)
    assert ds.meta["untested_flag"].all() and ds.notes["untested_flagged"] == 2
    assert all((b[p["untested_mask"]] == -1).all() for b, p in zip(ds.bins, plans))


def test_good_bins_option(tmp_path: Path, maps) -> None:
    m = maps[0]
    plans = write_g85(tmp_path / "g.xml", [m], fail_bins=(2, 3), untested_share=0.1, seed=1)
    w, unt = plans[0]["written"], plans[0]["untested_mask"]
    d = load(tmp_path / "g.xml", fab=FabOptions(good_bins=(1, 3)))
    want = np.where(m == 0, 0, np.where(unt | np.isin(w, (1, 3)), 1, 2))
    assert np.array_equal(d.maps[0], want)
    assert d.meta["untested_count"][0] == plans[0]["untested"]  # BinQuality Unknown stays untested
    # without definitions the file needs --good-bins
    write_e142(tmp_path / "n.xml", [m], definitions=False, seed=1)
    assert np.array_equal(load(tmp_path / "n.xml", fab=FabOptions(good_bins=(1,))).maps[0], m)
    msg = _error(tmp_path / "n.xml")
    assert re.search(r"line 14: <SubstrateMap SubstrateId='01'>: no bin definitions .* give --good-bins", msg), msg


def test_sniff() -> None:
    e = (b'\xef\xbb\xbf<?xml version="1.0"?>\r\n<!-- map -->\r\n'
         b'<MapData xmlns="urn:semi-org:xsd.E142-1.V1005.SubstrateMap">')
    assert e142.sniff_bytes(e) and detect_fab(e) is e142
    assert e142.sniff_bytes(b'<?xml version="1.0"?><Map xmlns="http://www.semi.org" SubstrateId="1">')
    assert e142.sniff_bytes(b"<Maps>\n<Map SubstrateId='1'>\n<Device BinType='Decimal'>")
    assert e142.sniff_bytes('<?xml version="1.0" encoding="utf-16"?><MapData>'.encode("utf-16"))
    assert e142.sniff_bytes(b'<?xml version="1.0"?><!DOCTYPE MapData [<!ENTITY a "b">]><MapData/>')
    assert not e142.sniff_bytes(b'<?xml version="1.0"?><Map><Layer/></Map>')  # some other map
    assert not e142.sniff_bytes(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">')
    assert not e142.sniff_bytes(b"DEVICE:X\nROWCT:2\n")


# ---------------------------------------------------------------- attacks and bad input

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE MapData [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<MapData><SubstrateMaps><SubstrateMap SubstrateId="&lol9;"/></SubstrateMaps></MapData>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE Map [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Map xmlns="http://www.semi.org" SubstrateId="&xxe;"><Device BinType="Decimal"/></Map>
"""


@pytest.mark.parametrize("body", [LAUGHS, EXTERNAL], ids=["billion_laughs", "external_entity"])
def test_xml_attacks_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "attack.xml"
    path.write_text(body)
    msg = _error(path)
    assert re.search(r"line 2: refused: the XML holds a document type declaration \(<!DOCTYPE (MapData|Map)>\)",
                     msg), msg
    assert "passwd" not in msg and "lol" not in msg


def _xml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    return path


E142_ROWS = """<?xml version="1.0"?>
<MapData>
 <Layouts><Layout LayoutId="D"><Dimension X="3" Y="2"/></Layout></Layouts>
 <SubstrateMaps><SubstrateMap SubstrateId="W1" LayoutSpecifier="D">
  <Overlay><BinCodeMap BinType="HexaDecimal" NullBin="FF">
   <BinDefinitions><BinDefinition BinCode="01" BinQuality="Pass"/></BinDefinitions>
{rows}
  </BinCodeMap></Overlay>
 </SubstrateMap></SubstrateMaps>
</MapData>
"""


@pytest.mark.parametrize("rows,pattern", [
    (["010101", "0101"], r"line 8: <SubstrateMap SubstrateId='W1'>: a row of 2 codes where the map has 3 columns"),
    (["010101"], r"line 7: <SubstrateMap SubstrateId='W1'>: 1 rows where the map size says 2"),
    (["010101", "01ZZ01"], r"line 8: .*'ZZ' is not a hexadecimal bin code"),
    (["01010", "010101"], r"line 7: .*a row of 5 characters is no whole number of 2-character codes"),
    (["FFFFFF", "FFFFFF"], r"line 7: .*no die coordinates"),
    ([], r"line 5: .*the map has no rows"),
])
def test_bad_e142_rows(tmp_path: Path, rows, pattern) -> None:
    text = E142_ROWS.format(rows="\n".join(f"   <BinCode>{r}</BinCode>" for r in rows))
    msg = _error(_xml(tmp_path, text))
    assert re.search(pattern, msg), msg


def test_bad_structure(tmp_path: Path) -> None:
    assert "is not well-formed XML" in _error(_xml(tmp_path, "<MapData><SubstrateMaps></MapData>"))
    assert "line 3: is not well-formed XML" in _error(_xml(tmp_path, E142_ROWS.replace("<Layouts>", "<Layouts", 1)))
    assert "line 1: <MapData> holds no <SubstrateMap>" in _error(_xml(tmp_path, "<MapData><Layouts/></MapData>"))
    no_bcm = E142_ROWS.format(rows="").replace("BinCodeMap", "DeviceIdMap")
    assert "line 4: no <SubstrateMap> holds an <Overlay> with a <BinCodeMap>" in _error(_xml(tmp_path, no_bcm))
    bad_type = E142_ROWS.format(rows="<BinCode>010101</BinCode>" * 2).replace("HexaDecimal", "Octal")
    assert "line 5: <SubstrateMap SubstrateId='W1'>: BinType 'Octal' is none of" in _error(_xml(tmp_path, bad_type))
    g85 = '<Map xmlns="http://www.semi.org" SubstrateId="9">\n<Device BinType="Decimal" NullBin="255"/>\n</Map>'
    assert "line 1: <Map SubstrateId='9'>: no <Device> with <Data>" in _error(_xml(tmp_path, g85))
    g85_dims = ('<Map SubstrateId="9">\n<Device BinType="Decimal" NullBin="255" Rows="x">\n<Bin BinCode="1" '
                'BinQuality="Pass"/><Data><Row>1 1</Row></Data></Device>\n</Map>')
    assert "line 2: <Map SubstrateId='9'>: Rows='x' is not a positive whole number" in _error(
        _xml(tmp_path, g85_dims))
    g85_nobins = g85_dims.replace(' Rows="x"', "").replace('<Bin BinCode="1" BinQuality="Pass"/>', "")
    assert "line 2: <Map SubstrateId='9'>: no bin definitions" in _error(_xml(tmp_path, g85_nobins))
    with pytest.raises(InputError, match=r"x.xml: line 1: the root element <Layouts> is neither E142"):
        e142.read_stream(io.BytesIO(b"<Layouts/>"), "x.xml", FabOptions(), InputLimits())


def test_too_large(tmp_path: Path, maps) -> None:
    path = tmp_path / "big.xml"
    write_e142(path, maps[:1])
    with pytest.raises(InputTooLarge, match=r"Y=18 is larger than the limit of 10 dies per side"):
        load(path, limits=InputLimits(max_map_side=10))
    wide = E142_ROWS.format(rows="<BinCode>" + "01" * 40 + "</BinCode>").replace('X="3" Y="2"', "")
    with pytest.raises(InputTooLarge, match=r"line 7: .*a row of 40 codes, more than the limit of 10 per side"):
        load(_xml(tmp_path, wide), limits=InputLimits(max_map_side=10))


def test_unknown_code_fails_and_null_quality(tmp_path: Path) -> None:
    text = E142_ROWS.format(rows="<BinCode>010203</BinCode>\n<BinCode>FF0404</BinCode>").replace(
        '<BinDefinition BinCode="01" BinQuality="Pass"/>',
        '<BinDefinition BinCode="01" BinQuality="Pass"/><BinDefinition BinCode="04" BinQuality="Null"/>'
        f'<BinDefinition BinCode="{UNTESTED_BIN:02X}" BinQuality="Unknown"/>')
    ds = load(_xml(tmp_path, text))
    assert ds.maps[0].tolist() == [[1, 2, 2], [0, 0, 0]]  # 03 has no definition: fails; 04 is Null: no die
    assert ds.bins[0].tolist() == [[1, 2, 3], [-1, -1, -1]]


# ---------------------------------------------------------------- shipped samples


@pytest.mark.parametrize("file,variant", [("lot_sample_e142.xml", "e142"), ("lot_sample_g85.xml", "g85")])
def test_shipped_samples_read_back_as_their_maps(file: str, variant: str) -> None:
    ds = load(SAMPLES_DIR / file)
    val = load(SAMPLES_DIR / "wm811k_sample_val.pkl.xz")
    assert len(ds) >= 3 and ds.notes["format"] == "e142" and (ds.meta["format_variant"] == variant).all()
    assert (ds.meta["lot"] == "WM811K-VAL").all()
    for m, wid in zip(ds.maps, ds.meta["wafer"]):
        assert np.array_equal(m, val.maps[int(wid.lstrip("W"))])
