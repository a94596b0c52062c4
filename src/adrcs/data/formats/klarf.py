"""KLARF defect files (KLA Results File, versions 1.1 / 1.2 flat statements and 1.8 records), one map per wafer.

What a wafer's map holds:

* the dies: those of the ``SampleTestPlan`` (1.8: ``SampleTestPlanList``), the dies holding defects (their
  ``XINDEX`` / ``YINDEX``), and, when the file gives the wafer diameter (``SampleSize 1 300;``: round, 300 mm),
  ``DiePitch`` and ``SampleCenterLocation`` (µm, from the origin of die (0, 0); ``DieOrigin`` is that origin's
  offset from the die's lower-left corner), every die whose rectangle lies fully inside the wafer circle (no
  edge exclusion). Without a diameter the wafer is the plan's dies plus the defect dies; so it is too when
  half or more of the plan's dies lie outside the circle (a geometry in other units or conventions).
* each die's status: failing with at least ``FabOptions.min_defects`` (``--min-defects``, default 1) defects;
  passing when inspected (in the plan, or holding defects, or every die when the file has no plan);
  untested (status 3: counted in ``untested_count``, a wafer with over 20 % of them is flagged) for a die on
  the wafer outside a sampled plan.
* bins: the defect count of each die.

Die indices grow to the right (x) and upward (y) in KLARF's stage coordinates, so maps are drawn with larger
y further up (``flip_y``); ``OrientationMarkLocation`` (where the notch is) is kept in the meta table, the grid
is not rotated by it.

Per-wafer meta: lot (``LotID``; 1.8 the ``LotRecord`` name), wafer (``WaferID``; the ``WaferRecord`` name),
slot, tool (``InspectionStationID``), part_type (``DeviceID``), step (``StepID``), start_time
(``ResultTimestamp``, else ``FileTimestamp``, ISO 8601), notch, defect_count, ``defects`` (compact JSON
``[[xindex, yindex, xrel, yrel, xsize, ysize, classnumber], ...]``, null where the file has no such column),
``defect_classes`` (JSON ``{class: count}``) and, with a class lookup, ``class_names`` (JSON).

Limits: at most 100,000 defects per wafer (InputTooLarge above). Bad input is refused with one line naming
the file, the line and the problem. The KLARF syntax is read by ``adrcs.data.fab``: ``klarf_lexer`` (tokens),
``klarf_table`` (defect and plan tables), ``klarf_records`` (1.2 statements, 1.8 records); this module turns the
wafer records into `FabWafer`s.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, BinaryIO

import numpy as np

from adrcs.data.fab.klarf_lexer import Lexer, iso_time, numbers, text_of
from adrcs.data.fab.klarf_records import DEFECT_COLUMNS, WaferRecord, read_12, read_18
from adrcs.data.fab.options import FabOptions
from adrcs.data.fab.wafer_grid import FAIL, PASS, UNTESTED, FabWafer
from adrcs.data.limits import InputLimits
from adrcs.errors import InputError, InputTooLarge

NAME = "klarf"
FAB = True
_SNIFF = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:fileversion\s+\d+\s+\d+\s*;|record\s+filerecord\b)", re.I)


def sniff_bytes(head: bytes) -> bool:
    """A KLARF file starts with ``FileVersion 1 2;`` (1.1 / 1.2) or ``Record FileRecord "1.8"`` (1.8)."""
    return bool(_SNIFF.match(head))


# ---------------------------------------------------------------- wafers


def _circle_dies(w: WaferRecord, name: str, wid: str, limits: InputLimits) -> tuple[np.ndarray, np.ndarray]:
    """Die indices whose rectangle lies fully inside the wafer circle; empty without the geometry."""
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    size, pitch = numbers(w.get("samplesize")), numbers(w.get("diepitch"))
    center, origin = numbers(w.get("samplecenterlocation")), numbers(w.get("dieorigin")) or [0.0, 0.0]
    if not size or len(size) < 2 or size[0] != 1 or not pitch or len(pitch) < 2 or not center or len(center) < 2:
        return none
    px, py = pitch[:2]
    if not (math.isfinite(px) and math.isfinite(py) and px > 0 and py > 0):
        raise InputError(name, f"line {w.line}: wafer {wid!r}: DiePitch {px:g} {py:g} is not positive")
    r = size[1] * 1000.0 / 2  # SampleSize in mm, pitch and locations in µm
    if not math.isfinite(r) or r <= 0 or len(origin) < 2 or not all(map(math.isfinite, center[:2] + origin[:2])):
        return none
    side = max(2 * r / px, 2 * r / py)
    if side > limits.max_map_side + 2:
        raise InputTooLarge(name, f"line {w.line}: wafer {wid!r}: a {size[1]:g} mm wafer at a die pitch of "
                                  f"{px:g} x {py:g} µm spans {side:.0f} dies per side, more than the limit of "
                                  f"{limits.max_map_side}")
    cx, cy = center[0] + origin[0], center[1] + origin[1]
    if max(abs(cx) / px, abs(cy) / py) > 1e9:  # no die index lies that far out
        return none
    ii = np.arange(math.floor((cx - r) / px) - 1, math.ceil((cx + r) / px) + 2)
    jj = np.arange(math.floor((cy - r) / py) - 1, math.ceil((cy + r) / py) + 2)
    x0, y0 = ii * px - cx, jj * py - cy
    fx = np.maximum(np.abs(x0), np.abs(x0 + px))  # farthest corner from the centre
    fy = np.maximum(np.abs(y0), np.abs(y0 + py))
    inside = fy[:, None] ** 2 + fx[None, :] ** 2 <= r * r * (1 + 1e-9)
    rows, cols = np.nonzero(inside)
    return ii[cols].astype(np.int64), jj[rows].astype(np.int64)


def _json_values(a: np.ndarray | None, n: int, digits: int | None) -> list:
    if a is None:
        return [None] * n
    vals = (np.round(a, digits) if digits is not None else a).tolist()
    return [None if v != v else (int(v) if float(v).is_integer() else v) for v in vals]


def _build(w: WaferRecord, index: int, lex: Lexer, options: FabOptions, limits: InputLimits) -> FabWafer:
    name = lex.name
    wid = text_of(w.get("waferid")) or w.wafer_id or str(index + 1)
    lot = text_of(w.get("lotid")) or w.lot_id or ""
    cols = {c: np.concatenate([d[c] for d in w.defects]) if w.defects else np.zeros(0) for c in DEFECT_COLUMNS
            if all(c in d for d in w.defects)}
    dx = cols.get("XINDEX", np.zeros(0)).astype(np.int64)  # whole numbers: checked by Table
    dy = cols.get("YINDEX", np.zeros(0)).astype(np.int64)
    px = np.concatenate([p["XINDEX"] for p in w.plans] or [np.zeros(0)]).astype(np.int64)
    py = np.concatenate([p["YINDEX"] for p in w.plans] or [np.zeros(0)]).astype(np.int64)
    has_plan = len(px) > 0
    if not has_plan and not len(dx):
        raise InputError(name, f"line {w.line}: wafer {wid!r} has no die coordinates (no SampleTestPlan and no "
                               "defects with XINDEX / YINDEX)")
    cx, cy = _circle_dies(w, name, wid, limits)
    xs, ys = np.concatenate([px, cx, dx]), np.concatenate([py, cy, dy])
    x0, y0 = int(xs.min()), int(ys.min())
    span = int(ys.max()) - y0 + 1  # |indices| <= 1e9: keys fit in int64
    every = (xs - x0) * span + (ys - y0)
    plan_keys, circle_keys = every[: len(px)], every[len(px): len(px) + len(cx)]
    if has_plan and len(cx) and np.isin(plan_keys, circle_keys).mean() < 0.5:
        # the geometry does not fit the plan (other units or centre convention): the wafer is the plan
        every = np.concatenate([plan_keys, every[len(px) + len(cx):]])
        cx = cx[:0]
    keys, inv = np.unique(every, return_inverse=True)
    inv = inv.reshape(-1)
    ux, uy = keys // span + x0, keys % span + y0
    counts = np.bincount(inv[len(px) + len(cx):], minlength=len(keys))
    inspected = np.zeros(len(keys), bool)
    inspected[inv[: len(px)]] = True
    inspected |= counts > 0
    if not has_plan:
        inspected[:] = True
    status = np.where(counts >= options.min_defects, FAIL, np.where(inspected, PASS, UNTESTED)).astype(np.uint8)

    n = len(dx)
    rows = zip(dx.tolist(), dy.tolist(), *(_json_values(cols.get(c), n, 3) for c in DEFECT_COLUMNS[2:6]),
               _json_values(cols.get("CLASSNUMBER"), n, None))
    classes = cols.get("CLASSNUMBER")
    class_counts: dict[str, int] = {}
    if classes is not None and n:
        vals, cnt = np.unique(classes[~np.isnan(classes)], return_counts=True)
        class_counts = {str(int(v)) if float(v).is_integer() else str(v): int(c) for v, c in zip(vals, cnt)}
    slot = text_of(w.get("slot") or w.get("slotnumber"))
    meta: dict[str, Any] = {
        "slot": int(slot) if slot and slot.isascii() and slot.isdigit() else slot,
        "tool": text_of(w.get("inspectionstationid")),
        "part_type": text_of(w.get("deviceid")),
        "step": text_of(w.get("stepid")),
        "start_time": iso_time(w.get("resulttimestamp") or w.get("filetimestamp")),
        "notch": text_of(w.get("orientationmarklocation")),
        "defect_count": int(n),
        "defects": json.dumps(list(rows), separators=(",", ":")),
        "defect_classes": json.dumps(class_counts, separators=(",", ":")),
    }
    lookup = w.get("_classes")
    if lookup:
        meta["class_names"] = json.dumps(lookup, separators=(",", ":"))
    return FabWafer(lot=lot, wafer=wid, x=ux, y=uy, status=status, bins=counts, flip_y=True,
                    meta=meta)


def read_stream(stream: BinaryIO, name: str, options: FabOptions, limits: InputLimits) -> list[FabWafer]:
    """One `FabWafer` per wafer record of a KLARF 1.1 / 1.2 / 1.8 file."""
    lex = Lexer(stream, name)
    first = lex.peek()
    if first is None:
        raise InputError(name, "is an empty KLARF file")
    wafers = read_18(lex, limits) if first.lower() == "record" else read_12(lex, limits)
    if not wafers:
        raise InputError(name, "holds no wafers (no WaferID / WaferRecord, SampleTestPlan or DefectList)")
    return [_build(w, i, lex, options, limits) for i, w in enumerate(wafers)]
