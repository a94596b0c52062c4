"""SINF, SEMI E142 and SEMI G85 bin-map files written from die-code maps (0 no die, 1 pass, 2 fail), for the
SINF / E142 readers' tests and the shipped samples.

Every writer first plans each wafer (`plan_bins`): passing dies get ``pass_bin``, failing dies a bin drawn from
``fail_bins``, a random ``untested_share`` of the dies (or the dies of an ``untested`` mask) are written as not
tested and, in SINF, ``references`` passing dies as reference dies (``FF``). The plan (the writers' return
value, one dict per wafer) holds what the readers should give back: ``expected`` (the die-code map, untested
dies passing), ``bins`` (each die's bin, -1 off the wafer and for untested dies), ``untested`` (count) and
``wafer`` (the id written).

Maps are written as they are drawn: the first row on top, the whole array (off-wafer border included).
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Sequence

import numpy as np

UNTESTED_BIN = 14  # E142 / G85: the bin written for untested dies (BinQuality "Unknown")
ASCII_BASE = ord("0")  # ASCII bin type: bin b is written as chr(ASCII_BASE + b)
NULL = {"hexadecimal": "FF", "integer2": "FFFF", "decimal": "255", "ascii": "."}


def plan_bins(maps: Sequence[Any], *, pass_bin: int = 1, fail_bins: Sequence[int] = (2, 3, 4),
              untested_share: float = 0.0, untested: Sequence[np.ndarray | None] | None = None,
              references: int = 0, wafer_ids: Sequence[str] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """What the writers write for each map (see the module text). maps: die-code maps, or (wafer_id, map) pairs."""
    rng = np.random.default_rng(seed)
    plans = []
    for k, item in enumerate(maps):
        wid, m = item if isinstance(item, tuple) else ((wafer_ids[k] if wafer_ids else f"{k + 1:02d}"), item)
        m = np.asarray(m, np.uint8)
        bins = np.full(m.shape, -1, np.int64)
        bins[m == 1] = pass_bin
        fails = m == 2
        bins[fails] = rng.choice(np.asarray(fail_bins), size=int(fails.sum()))
        mask = np.zeros(m.shape, bool)
        if untested is not None and untested[k] is not None:
            mask = np.asarray(untested[k], bool) & (m > 0)
        elif untested_share > 0:
            mask = (m > 0) & (rng.random(m.shape) < untested_share)
        ref = np.zeros(m.shape, bool)
        if references:
            r, c = np.nonzero((m == 1) & ~mask)
            pick = rng.choice(len(r), size=min(references, len(r)), replace=False)
            ref[r[pick], c[pick]] = True
        expected = np.where(mask, np.uint8(1), m).astype(np.uint8)
        plans.append({"wafer": wid, "slot": k + 1, "map": m, "expected": expected, "untested_mask": mask,
                      "reference_mask": ref, "bins": np.where(mask, -1, np.where(ref, 255, bins)),
                      "written": bins, "untested": int(mask.sum()), "fails": int((expected == 2).sum())})
    return plans


def _write(path: Path, text: str, gz: bool, newline: str = "\n") -> None:
    data = text.replace("\n", newline).encode("utf-8")
    path = Path(path)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


# ---------------------------------------------------------------- SINF


def sinf_text(plans: list[dict[str, Any]], *, lot: str = "LOT-1", device: str = "DEV-A", width: int = 2,
              bcequ: str | None = "01", fnloc: int = 180, spaced: bool = True, extra: Sequence[str] = ()) -> str:
    out = []
    for p in plans:
        m, b = p["map"], p["written"]
        h, w = m.shape
        out += [f"DEVICE:{device}", f"LOT:{lot}", f"WAFER:{p['wafer']}", f"FNLOC:{fnloc}", f"ROWCT:{h}",
                f"COLCT:{w}"]
        if bcequ is not None:
            out.append(f"BCEQU:{bcequ}")
        out += ["REFPX:", "REFPY:", "DUTMS:mm", "XDIES:2.945", "YDIES:2.945", *extra]
        for r in range(h):
            codes = []
            for c in range(w):
                if m[r, c] == 0:
                    codes.append("_" * width)
                elif p["untested_mask"][r, c]:
                    codes.append("@" * width)
                elif p["reference_mask"][r, c]:
                    codes.append("F" * width)
                else:
                    codes.append(f"{int(b[r, c]):0{width}X}")
            out.append("RowData:" + (" ".join(codes) if spaced else "".join(codes)))
    return "\n".join(out) + "\n"


def write_sinf(path: str | Path, maps: Sequence[Any], *, lot: str = "LOT-1", device: str = "DEV-A", width: int = 2,
               bcequ: str | None = "01", fnloc: int = 180, spaced: bool = True, crlf: bool = False, gz: bool = False,
               extra: Sequence[str] = (), **plan: Any) -> list[dict[str, Any]]:
    """A SINF file of `maps` (one header + RowData section each; several maps: several sections in one file).
    width: code width (2, or 3 as some writers do); bcequ: the BCEQU value (None: no BCEQU line);
    spaced: False writes rows without spaces; extra: more header lines. plan: `plan_bins` options."""
    plans = plan_bins(maps, **plan)
    for p in plans:  # a reference die's code is all F: its bin
        p["bins"] = np.where(p["reference_mask"], 16 ** width - 1, p["bins"])
    text = sinf_text(plans, lot=lot, device=device, width=width, bcequ=bcequ, fnloc=fnloc, spaced=spaced,
                     extra=extra)
    _write(Path(path), text, gz, "\r\n" if crlf else "\n")
    return plans


# ---------------------------------------------------------------- E142 / G85


def _kind(bin_type: str) -> str:
    return bin_type.lower()


def code_text(b: int, bin_type: str) -> str:
    """Bin `b` written as a code of `bin_type`."""
    k = _kind(bin_type)
    if k == "ascii":
        return chr(ASCII_BASE + b)
    if k == "decimal":
        return f"{b:03d}"
    return f"{b:04X}" if k == "integer2" else f"{b:02X}"


def read_bin(b: int, bin_type: str) -> int:
    """The bin the reader gives for written bin `b` (ASCII codes read back as their character code)."""
    return ASCII_BASE + b if b >= 0 and _kind(bin_type) == "ascii" else b


def _rows(p: dict[str, Any], bin_type: str, null: str, spaced: bool) -> list[str]:
    m, b, unt = p["map"], p["written"], p["untested_mask"]
    rows = []
    for r in range(m.shape[0]):
        codes = [null if m[r, c] == 0 else code_text(UNTESTED_BIN if unt[r, c] else int(b[r, c]), bin_type)
                 for c in range(m.shape[1])]
        rows.append(" ".join(codes) if spaced else "".join(codes))
    return rows


def _definitions(p_all: list[dict[str, Any]], bin_type: str, pass_bins: Sequence[int], tag: str) -> list[str]:
    used = sorted({int(v) for p in p_all for v in np.unique(p["written"][p["map"] > 0])} | set(pass_bins))
    out = []
    for v in used:
        q = "Pass" if v in pass_bins else "Fail"
        out.append(f'<{tag} BinCode="{code_text(v, bin_type)}" BinQuality="{q}" BinDescription="bin {v}"/>')
    if any(p["untested"] for p in p_all):
        out.append(f'<{tag} BinCode="{code_text(UNTESTED_BIN, bin_type)}" BinQuality="Unknown" '
                   'BinDescription="NotTested"/>')
    return out


def _plans(maps: Sequence[Any], bin_type: str, plan: dict[str, Any]) -> list[dict[str, Any]]:
    plans = plan_bins(maps, **plan)
    if _kind(bin_type) == "ascii":
        for p in plans:
            p["bins"] = np.where(p["bins"] >= 0, p["bins"] + ASCII_BASE, -1)
    return plans


def write_e142(path: str | Path, maps: Sequence[Any], *, lot: str = "LOT-1", bin_type: str = "HexaDecimal",
               null_bin: str | None = None, definitions: bool = True, pass_bins: Sequence[int] = (1,),
               origin: str = "UpperLeft", axis: str = "DownRight", product: str = "DEV-A",
               namespace: str | None = "urn:semi-org:xsd.E142-1.V1005.SubstrateMap", spaced: bool | None = None,
               gz: bool = False, **plan: Any) -> list[dict[str, Any]]:
    """A SEMI E142 ``MapData`` file with one ``SubstrateMap`` per map (one device layout each).
    bin_type: HexaDecimal | Decimal | ASCII | Integer2; spaced: codes separated by spaces (default: Decimal only);
    definitions: False writes no ``BinDefinitions``. plan: `plan_bins` options."""
    plans = _plans(maps, bin_type, plan)
    null = null_bin if null_bin is not None else NULL[_kind(bin_type)]
    spaced = _kind(bin_type) == "decimal" if spaced is None else spaced
    ns = f' xmlns="{namespace}"' if namespace else ""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f"<MapData{ns}>", "  <Layouts>"]
    for i, p in enumerate(plans):
        h, w = p["map"].shape
        out += [f'    <Layout LayoutId="Wafer{i}" DefaultUnits="mm" TopLevel="true"><Dimension X="1" Y="1"/>'
                f'<ChildLayouts><ChildLayout LayoutId="Devices{i}"/></ChildLayouts></Layout>',
                f'    <Layout LayoutId="Devices{i}" DefaultUnits="mm"><Dimension X="{w}" Y="{h}"/>'
                f'<ProductId>{product}</ProductId></Layout>']
    out += ["  </Layouts>", "  <Substrates>"]
    for p in plans:
        out.append(f'    <Substrate SubstrateType="Wafer" SubstrateId="{p["wafer"]}"><LotId>{lot}</LotId>'
                   f'<SlotNumber>{p["slot"]}</SlotNumber></Substrate>')
    out += ["  </Substrates>", "  <SubstrateMaps>"]
    for i, p in enumerate(plans):
        out += [f'    <SubstrateMap SubstrateType="Wafer" SubstrateId="{p["wafer"]}" Orientation="180" '
                f'OriginLocation="{origin}" AxisDirection="{axis}" LayoutSpecifier="Wafer{i}/Devices{i}">',
                '      <Overlay MapName="SortGrade" MapVersion="1">',
                '        <ReferenceDevices><ReferenceDevice Name="FirstDevice"><Coordinates X="0" Y="0"/>'
                "</ReferenceDevice></ReferenceDevices>",
                f'        <BinCodeMap BinType="{bin_type}" NullBin="{null}" MapType="2DArray">']
        if definitions:
            out += ["          <BinDefinitions>",
                    *("            " + d for d in _definitions([p], bin_type, pass_bins, "BinDefinition")),
                    "          </BinDefinitions>"]
        out += [f"          <BinCode>{row}</BinCode>" for row in _rows(p, bin_type, null, spaced)]
        out += ["        </BinCodeMap>", "      </Overlay>", "    </SubstrateMap>"]
    out += ["  </SubstrateMaps>", "</MapData>"]
    _write(Path(path), "\n".join(out) + "\n", gz)
    return plans


def write_g85(path: str | Path, maps: Sequence[Any], *, lot: str = "LOT-1", bin_type: str = "Decimal",
              null_bin: str | None = None, definitions: bool = True, pass_bins: Sequence[int] = (1,),
              product: str = "DEV-A", namespace: str | None = "http://www.semi.org", spaced: bool = True,
              single_root: bool | None = None, gz: bool = False, **plan: Any) -> list[dict[str, Any]]:
    """A SEMI G85 file: one ``<Map>`` per map under ``<Maps>`` (a single map: a ``<Map>`` root unless
    single_root=False). Rows in CDATA, codes spaced unless spaced=False. plan: `plan_bins` options."""
    plans = _plans(maps, bin_type, plan)
    null = null_bin if null_bin is not None else NULL[_kind(bin_type)]
    single = len(plans) == 1 if single_root is None else single_root
    ns = f' xmlns="{namespace}"' if namespace else ""
    out = ['<?xml version="1.0" encoding="utf-8"?>']
    if not single:
        out.append(f"<Maps{ns}>")
    for p in plans:
        h, w = p["map"].shape
        out += [f'<Map{ns if single else ""} SubstrateType="Wafer" SubstrateId="{p["wafer"]}" '
                'FormatRevision="SEMI G85 0703">',
                f'  <Device ProductId="{product}" LotId="{lot}" WaferSize="300" CreateDate="20240305143000000" '
                f'SupplierName="FAB1" Rows="{h}" Columns="{w}" Orientation="180" OriginLocation="2" '
                f'BinType="{bin_type}" NullBin="{null}">',
                '    <ReferenceDevice ReferenceDeviceX="1" ReferenceDeviceY="2"/>']
        if definitions:
            out += ["    " + d for d in _definitions([p], bin_type, pass_bins, "Bin")]
        out += ['    <Data MapName="Map" MapVersion="1">',
                *(f"      <Row><![CDATA[{row}]]></Row>" for row in _rows(p, bin_type, null, spaced)),
                "    </Data>", "  </Device>", "</Map>"]
    if not single:
        out.append("</Maps>")
    _write(Path(path), "\n".join(out) + "\n", gz)
    return plans


__all__ = ["plan_bins", "write_sinf", "sinf_text", "write_e142", "write_g85", "code_text", "read_bin",
           "UNTESTED_BIN", "NULL"]
