"""SEMI E142 substrate maps and SEMI G85 wafer maps (XML bin maps), one map per wafer.

E142: ``<MapData>`` with ``<Layouts>`` (the device layout's ``<Dimension X= Y=>`` gives the columns and rows),
``<Substrates>`` (``<Substrate SubstrateId=>`` with ``<LotId>``, ``<SlotNumber>``, ``<ProductId>``) and
``<SubstrateMaps>``: each ``<SubstrateMap SubstrateId= LayoutSpecifier= Orientation= OriginLocation=
AxisDirection=>`` whose ``<Overlay>`` holds a ``<BinCodeMap BinType= NullBin=>`` is one wafer (the first such
overlay counts), its rows the ``<BinCode>`` elements, which bins pass from ``<BinDefinitions>``
(``<BinDefinition BinCode= BinQuality=>``).

G85: ``<Map SubstrateId=>`` (alone, or several under ``<Maps>``) with ``<Device LotId= ProductId= Rows= Columns=
BinType= NullBin= Orientation= OriginLocation= CreateDate=>``, ``<Bin BinCode= BinQuality=>`` definitions and
``<Data><Row>..</Row></Data>`` (CDATA or text); the first ``<Device>`` with ``<Data>`` is the wafer's map.

Bin types, qualities, the safe XML parse and untested dies: see ``adrcs.data.fab.xml_maps``. Without bin
definitions the file is refused unless ``--good-bins`` says which bins pass. Names match without namespaces.

Orientation: the map is drawn as the file lists it (first row on top, first code on the left). E142's
``OriginLocation`` (``UpperLeft``, ``LowerLeft`` (the default), ``UpperRight``, ``LowerRight``, ``Center``) and
``AxisDirection`` (``UpRight``, ``DownRight``, ...) set the die coordinates of the placement columns only;
G85's numeric ``OriginLocation`` and both formats' ``Orientation`` (flat / notch angle) are kept in the meta
table, the grid is not rotated by them. Reference devices (E142 ``<ReferenceDevice><Coordinates X= Y=>``,
G85 ``<ReferenceDevice ReferenceDeviceX= ReferenceDeviceY=>``) are positions whose die keeps its bin; they are
listed in ``reference_dies`` (JSON).

Per-wafer meta: lot, wafer (SubstrateId), format_variant (``e142`` | ``g85``), part_type, slot, start_time
(G85 CreateDate, ISO 8601), supplier, orientation, origin, axis, substrate_type, map_name, bin_type, null_bin,
bin_names (JSON ``{bin: description}``), reference_dies. Bad input: one line naming the file, the line and the
problem.
"""
from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

import numpy as np

from adrcs.data.fab import xml_maps as X
from adrcs.data.fab.options import FabOptions
from adrcs.data.fab.wafer_grid import FabWafer
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge

NAME = "e142"
FAB = True

_PROLOG = re.compile(r"\A(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE\s+(?:[\w.-]+:)?([\w.-]+)", re.I)
_ROOT = re.compile(r"<(?:[\w.-]+:)?([\w.-]+)[\s/>]")


def _head_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    return head.decode("utf-8", errors="ignore").lstrip("\ufeff")


def sniff_bytes(head: bytes) -> bool:
    """An XML document whose root (or DOCTYPE) is E142 ``MapData`` or G85 ``Map`` / ``Maps`` (with a ``Device``
    element or the SEMI namespace in the first bytes)."""
    t = _head_text(head)
    t = t[_PROLOG.match(t).end():]
    m = _DOCTYPE.match(t)
    root = m.group(1) if m else None
    if root is None:
        m = _ROOT.match(t)
        root = m.group(1) if m else None
    if root is None:
        return False
    root = root.lower()
    if root == "mapdata":
        return True
    return root in ("map", "maps") and bool(re.search(r"<(?:[\w.-]+:)?Device[\s>]|semi\.org", t, re.I))


# ---------------------------------------------------------------- one map


def _iso(value: str | None) -> str | None:
    """G85 CreateDate ``YYYYMMDDhhmmss[fff]`` as ISO 8601; other text as given."""
    if value and re.fullmatch(r"\d{14}\d*", value):
        v = value
        return f"{v[:4]}-{v[4:6]}-{v[6:8]}T{v[8:10]}:{v[10:12]}:{v[12:14]}"
    return value


def _int_or_text(value: str | None) -> int | str | None:
    return int(value) if value and value.isascii() and value.isdigit() else value


def _dims(doc: X.XmlDoc, el: Any, rows_attr: str, cols_attr: str, name: str, where: str,
          limits: InputLimits) -> tuple[int | None, int | None]:
    out = []
    for a in (rows_attr, cols_attr):
        v = X.attr(el, a.lower())
        if v is None:
            out.append(None)
            continue
        if not (v.isascii() and v.isdigit()) or int(v) < 1:
            raise InputError(name, f"line {doc.line(el)}: {where}: {a}={v!r} is not a positive whole number")
        if int(v) > limits.max_map_side:
            raise InputTooLarge(name, f"line {doc.line(el)}: {where}: {a}={v} is larger than the limit of "
                                      f"{limits.max_map_side} dies per side")
        out.append(int(v))
    return out[0], out[1]


def _wafer(doc: X.XmlDoc, name: str, options: FabOptions, limits: InputLimits, *, lot: str, wafer: str,
           bin_el: Any, bin_type: str | None, null: str | None, defs: list[Any] | None, rows: list[Any],
           shape: tuple[int | None, int | None], where: str, origin: str | None, axis: str | None,
           meta: dict[str, Any]) -> FabWafer:
    kind = X.bin_kind(bin_type)
    if not kind:
        raise InputError(name, f"line {doc.line(bin_el)}: {where}: BinType {bin_type!r} is none of ASCII, Decimal, "
                               "HexaDecimal, Integer2")
    if not rows:
        raise InputError(name, f"line {doc.line(bin_el)}: {where}: the map has no rows")
    n_rows, n_cols = shape
    if n_rows is not None and len(rows) != n_rows:
        raise InputError(name, f"line {doc.line(rows[-1])}: {where}: {len(rows)} rows where the map size says "
                               f"{n_rows}")
    if len(rows) > limits.max_map_side:
        raise InputTooLarge(name, f"line {doc.line(rows[-1])}: {where}: {len(rows)} rows, more than the limit of "
                                  f"{limits.max_map_side} per side")
    values = X.decode_rows([(r.text, doc.line(r)) for r in rows], kind, n_cols, name, where, limits.max_map_side)
    if defs is None and options.good_bins is None:
        raise InputError(name, f"line {doc.line(bin_el)}: {where}: no bin definitions (BinDefinitions / Bin with "
                               "BinQuality), so which bins pass is unknown; give --good-bins")
    null_v = X.parse_code(null, kind, name, doc.line(bin_el), "NullBin")
    quality: dict[int, str] = {}
    names: dict[str, str] = {}
    for d in defs or []:
        code = X.attr(d, "bincode", strip=kind != "ascii")
        if code is None:
            raise InputError(name, f"line {doc.line(d)}: {where}: a bin definition without BinCode")
        v = X.parse_code(code, kind, name, doc.line(d), "BinCode")
        quality[v] = X.attr(d, "binquality") or ""
        desc = X.attr(d, "bindescription")
        if desc:
            names[str(v)] = desc
    status = X.statuses(values, null_v, quality, options.good_bins)
    r, c = np.nonzero(status)
    if not len(r):
        raise InputError(name, f"line {doc.line(rows[0])}: {where}: no die coordinates (every position holds the "
                               "null bin)")
    xs, ys, flip_x, flip_y, extent = X.placement(values.shape[0], values.shape[1], origin, axis)
    st = status[r, c]
    bins = np.where(st == 3, -1, values[r, c])
    meta = {**meta, "bin_type": bin_type or "HexaDecimal", "null_bin": null,
            "bin_names": json.dumps(names, separators=(",", ":"))}
    return FabWafer(lot=lot, wafer=wafer, x=xs[c], y=ys[r], status=st, bins=bins, flip_x=flip_x, flip_y=flip_y,
                    extent=extent, meta=meta)


# ---------------------------------------------------------------- E142


def _e142(doc: X.XmlDoc, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    root = doc.root
    layouts = {X.attr(el, "layoutid"): el for el in X.descendants(root, "layout")}
    substrates = {X.attr(el, "substrateid"): el for el in X.descendants(root, "substrate")}
    maps = X.descendants(root, "substratemap")
    if not maps:
        raise InputError(name, f"line {doc.line(root)}: <MapData> holds no <SubstrateMap> (no die map)")
    wafers = []
    for i, sm in enumerate(maps):
        bcm = next((b for ov in X.children(sm, "overlay") for b in X.children(ov, "bincodemap")), None)
        if bcm is None:
            continue
        if len(wafers) >= limits.max_maps:
            raise InputTooLarge(name, f"holds more than the limit of {limits.max_maps} maps")
        wid = X.attr(sm, "substrateid") or str(len(wafers) + 1)
        where = f"<SubstrateMap SubstrateId={wid!r}>"
        sub = substrates.get(X.attr(sm, "substrateid"))
        spec = (X.attr(sm, "layoutspecifier") or "").strip("/").split("/")[-1]
        layout = layouts.get(spec)
        if layout is None and len(layouts) == 1:
            layout = next(iter(layouts.values()))
        dim = X.child(layout, "dimension")
        n_rows, n_cols = _dims(doc, dim, "Y", "X", name, where, limits) if dim is not None else (None, None)
        defs_el = X.child(bcm, "bindefinitions")
        refs = [[X.number(X.attr(c, "x")), X.number(X.attr(c, "y"))]
                for ov in X.children(sm, "overlay") for rd in X.descendants(ov, "referencedevice")
                for c in X.children(rd, "coordinates")]
        overlay = next(ov for ov in X.children(sm, "overlay") if bcm in list(ov))
        product = next((X.text(e) for el in (sub, layout) if el is not None for e in X.descendants(el, "productid")
                        if X.text(e)), None)
        meta = {"format_variant": "e142", "part_type": product or X.attr(layout, "productid"),
                "slot": _int_or_text(X.text(X.child(sub, "slotnumber"))),
                "start_time": _iso(X.attr(overlay, "createdate") or X.attr(sm, "createdate")),
                "supplier": X.text(X.child(sub, "suppliername")),
                "orientation": X.number(X.attr(sm, "orientation")), "origin": X.attr(sm, "originlocation"),
                "axis": X.attr(sm, "axisdirection"), "substrate_type": X.attr(sm, "substratetype"),
                "map_name": X.attr(overlay, "mapname"),
                "reference_dies": json.dumps(refs, separators=(",", ":"))}
        wafers.append(_wafer(
            doc, name, options, limits, lot=X.text(X.child(sub, "lotid")) or X.attr(sm, "lotid") or "", wafer=wid,
            bin_el=bcm, bin_type=X.attr(bcm, "bintype"), null=X.attr(bcm, "nullbin", strip=False),
            defs=X.children(defs_el, "bindefinition") or None,
            rows=X.children(bcm, "bincode"), shape=(n_rows, n_cols), where=where,
            origin=X.attr(sm, "originlocation"), axis=X.attr(sm, "axisdirection"), meta=meta))
    if not wafers:
        raise InputError(name, f"line {doc.line(maps[0])}: no <SubstrateMap> holds an <Overlay> with a "
                               "<BinCodeMap> (no bin map)")
    return wafers


# ---------------------------------------------------------------- G85


def _g85(doc: X.XmlDoc, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    root = doc.root
    maps = [root] if X.local(root.tag) == "map" else X.children(root, "map")
    if not maps:
        raise InputError(name, f"line {doc.line(root)}: <Maps> holds no <Map>")
    if len(maps) > limits.max_maps:
        raise InputTooLarge(name, f"holds {len(maps)} maps, more than the limit of {limits.max_maps}")
    wafers = []
    for i, m in enumerate(maps):
        wid = X.attr(m, "substrateid") or X.attr(m, "waferid") or str(i + 1)
        where = f"<Map SubstrateId={wid!r}>"
        dev = next((d for d in X.children(m, "device") if X.child(d, "data") is not None), None)
        if dev is None:
            raise InputError(name, f"line {doc.line(m)}: {where}: no <Device> with <Data> (no die map)")
        data = X.child(dev, "data")
        n_rows, n_cols = _dims(doc, dev, "Rows", "Columns", name, where, limits)
        bins = X.children(dev, "bin")
        refs = [[X.number(X.attr(r, "referencedevicex")), X.number(X.attr(r, "referencedevicey"))]
                for r in X.children(dev, "referencedevice")]
        meta = {"format_variant": "g85", "part_type": X.attr(dev, "productid"),
                "start_time": _iso(X.attr(dev, "createdate")), "supplier": X.attr(dev, "suppliername"),
                "wafer_size": X.number(X.attr(dev, "wafersize")),
                "orientation": X.number(X.attr(dev, "orientation")), "origin": X.attr(dev, "originlocation"),
                "substrate_type": X.attr(m, "substratetype"), "map_name": X.attr(data, "mapname"),
                "reference_dies": json.dumps(refs, separators=(",", ":"))}
        wafers.append(_wafer(
            doc, name, options, limits, lot=X.attr(dev, "lotid") or X.attr(m, "lotid") or "", wafer=wid,
            bin_el=dev, bin_type=X.attr(dev, "bintype"), null=X.attr(dev, "nullbin", strip=False),
            defs=bins or None, rows=X.children(data, "row"), shape=(n_rows, n_cols), where=where,
            origin=None, axis="downright", meta=meta))
    return wafers


def read_stream(stream: BinaryIO, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    """One `FabWafer` per E142 ``SubstrateMap`` or G85 ``Map`` of an XML bin-map file."""
    doc = X.parse(stream, name)
    kind = X.local(doc.root.tag)
    if kind == "mapdata":
        return _e142(doc, name, options, limits)
    if kind in ("map", "maps"):
        return _g85(doc, name, options, limits)
    raise InputError(name, f"line {doc.line(doc.root)}: the root element <{doc.root.tag.rsplit('}', 1)[-1]}> is "
                           "neither E142 <MapData> nor G85 <Map> / <Maps>")
