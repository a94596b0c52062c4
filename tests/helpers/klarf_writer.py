"""KLARF 1.2 / 1.8 files written from die-code maps (0 no die, 1 pass, 2 fail), for the KLARF reader's tests.

Geometry: map column c, row r is die (XINDEX c, YINDEX height-1-r) (y grows upward), ``DieOrigin 0 0`` and the
wafer centre (``SampleCenterLocation``) in the middle of the map's grid. The wafer diameter (``SampleSize``) is
chosen so that every die whose rectangle lies fully inside the wafer circle is a die of the map (``circle_fit``):
the reader's on-wafer dies are then the plan's dies, and a full plan reads back as the same map. For a map that
is exactly such a circle (``circle_map``) a sampled plan leaves the other dies untested.

Each failing die gets ``defects_per_fail`` (lo, hi) defects at random places; with ``sampled`` the test plan
lists the failing dies and a random ``sample_share`` of the passing ones.
"""
from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SPEC_12 = ["DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "XSIZE", "YSIZE", "DEFECTAREA", "DSIZE", "CLASSNUMBER",
           "TEST", "CLUSTERNUMBER", "ROUGHBINNUMBER", "FINEBINNUMBER", "REVIEWSAMPLE", "IMAGECOUNT", "IMAGELIST"]
SPEC_18 = ["DEFECTID", "XREL", "YREL", "XINDEX", "YINDEX", "XSIZE", "YSIZE", "DEFECTAREA", "DSIZE", "CLASSNUMBER",
           "TEST", "ROUGHBINNUMBER", "FINEBINNUMBER"]
CLASS_NAMES = {0: "Unclassified", 1: "Particle", 7: "Scratch", 12: "Residue"}


def die_indices(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(XINDEX, YINDEX) of every die of `m` (code > 0), row-major order."""
    r, c = np.nonzero(m > 0)
    return c.astype(int), (m.shape[0] - 1 - r).astype(int)


def _far(m: np.ndarray, pitch: tuple[float, float]) -> np.ndarray:
    """Distance from the wafer centre to the farthest corner of every grid position (padded by 1 all round)."""
    h, w = m.shape
    px, py = pitch
    cx, cy = w * px / 2, h * py / 2
    i = np.arange(-1, w + 1)
    j = np.arange(-1, h + 1)
    fx = np.maximum(np.abs(i * px - cx), np.abs((i + 1) * px - cx))
    fy = np.maximum(np.abs(j * py - cy), np.abs((j + 1) * py - cy))
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)  # [j + 1, i + 1]


def circle_fit(m: np.ndarray, pitch: tuple[float, float]) -> float:
    """Largest wafer radius (µm) whose fully-inside dies are all dies of `m`, less a small margin."""
    h, w = m.shape
    far = _far(m, pitch)
    die = np.zeros_like(far, bool)
    die[1:-1, 1:-1] = (m > 0)[::-1]  # [j, i]: y grows upward
    return float(far[~die].min()) * (1 - 1e-6)


def circle_map(n: int, pitch: tuple[float, float], radius: float | None = None) -> np.ndarray:
    """An n x n map whose dies are exactly the dies fully inside a circle (default radius: n/2 pitches)."""
    far = _far(np.ones((n, n)), pitch)[1:-1, 1:-1]
    r = radius if radius is not None else n * min(pitch) / 2
    return (far <= r)[::-1].astype(np.uint8)


def _defects(m: np.ndarray, rng: np.random.Generator, per_fail: tuple[int, int], pitch: tuple[float, float],
             classes: Sequence[int], digits: int = 3) -> list[dict[str, Any]]:
    r, c = np.nonzero(m == 2)
    out = []
    for x, y in zip(c.tolist(), (m.shape[0] - 1 - r).tolist()):
        for _ in range(int(rng.integers(per_fail[0], per_fail[1] + 1))):
            xs, ys = round(float(rng.uniform(0.5, 20)), digits), round(float(rng.uniform(0.5, 20)), digits)
            out.append({"DEFECTID": len(out) + 1, "XREL": round(float(rng.uniform(0, pitch[0])), digits),
                        "YREL": round(float(rng.uniform(0, pitch[1])), digits), "XINDEX": x, "YINDEX": y,
                        "XSIZE": xs, "YSIZE": ys, "DEFECTAREA": round(xs * ys, digits),
                        "DSIZE": max(xs, ys), "CLASSNUMBER": int(rng.choice(classes)), "TEST": 1,
                        "CLUSTERNUMBER": 0, "ROUGHBINNUMBER": 0, "FINEBINNUMBER": 0, "REVIEWSAMPLE": 0})
    return out


def plan_wafers(wafers: Sequence[Any], *, sampled: bool = False, sample_share: float = 0.5,
                defects_per_fail: tuple[int, int] = (1, 3), pitch: tuple[float, float] = (5000.0, 4000.0),
                classes: Sequence[int] = (0, 1, 7), seed: int = 0, wafer_ids: Sequence[str] | None = None,
                diameter: str | float | None = "fit", digits: int = 3, with_plan: bool = True) -> list[dict[str, Any]]:
    """What `write_klarf` writes for each map: id, slot, geometry, plan and defects (also its return value).

    wafers: maps, or (wafer_id, map) pairs. diameter: "fit" (`circle_fit`), a number (mm) or None (no SampleSize).
    digits: decimals of the defects' positions and sizes. with_plan: False writes no SampleTestPlan.
    """
    rng = np.random.default_rng(seed)
    out = []
    for k, item in enumerate(wafers):
        wid, m = item if isinstance(item, tuple) else ((wafer_ids[k] if wafer_ids else f"W{k + 1:02d}"), item)
        m = np.asarray(m, np.uint8)
        xi, yi = die_indices(m)
        keep = np.full(len(xi), bool(with_plan))
        if sampled:
            keep = (m[m > 0] == 2) | (rng.random(len(xi)) < sample_share)  # same order as die_indices
        h, w = m.shape
        dia = (2 * circle_fit(m, pitch) / 1000.0) if diameter == "fit" else diameter
        out.append({"wafer": wid, "slot": k + 1, "map": m, "pitch": pitch, "diameter_mm": dia,
                    "center": (w * pitch[0] / 2, h * pitch[1] / 2),
                    "plan": list(zip(xi[keep].tolist(), yi[keep].tolist())),
                    "defects": _defects(m, rng, defects_per_fail, pitch, classes, digits),
                    "dies": int(len(xi)), "fails": int((m == 2).sum())})
    return out


def _date(t: datetime, year4: bool) -> str:
    return t.strftime("%m-%d-%Y" if year4 else "%m-%d-%y")


def _text_12(plans: list[dict], *, lot: str, step: str, device: str, tool: tuple[str, str, str], t: datetime,
             spec: Sequence[str], image_list: bool) -> str:
    d, hms = _date(t, False), t.strftime("%H:%M:%S")
    out = ["FileVersion 1 2;", f"FileTimestamp {d} {hms};",
           "InspectionStationID " + " ".join(f'"{v}"' for v in tool) + ";", "SampleType WAFER;",
           f"ResultTimestamp {d} {hms};", f'LotID "{lot}";', f'DeviceID "{device}";', f'SetupID "SETUP" {d} {hms};',
           f'StepID "{step}";', "SampleOrientationMarkType NOTCH;", "OrientationMarkLocation DOWN;",
           "DieOrigin 0.000000e+00 0.000000e+00;"]
    for p in plans:
        out += [f'WaferID "{p["wafer"]}";', f"Slot {p['slot']};"]
        if p["diameter_mm"] is not None:
            out.append(f"SampleSize 1 {p['diameter_mm']:.6f};")
        out += [f"DiePitch {p['pitch'][0]:.10e} {p['pitch'][1]:.10e};",
                f"SampleCenterLocation {p['center'][0]:.10e} {p['center'][1]:.10e};",
                f"ClassLookup {len(CLASS_NAMES)}"] + [f' {k} "{v}"' for k, v in CLASS_NAMES.items()]
        out[-1] += ";"
        if p["plan"]:
            out += ["InspectionTest 1;", f"SampleTestPlan {len(p['plan'])}"] + [f" {x} {y}" for x, y in p["plan"]]
            out[-1] += ";"
        out += [f"AreaPerTest {len(p['plan']) * p['pitch'][0] * p['pitch'][1]:.6e};",
                f"DefectRecordSpec {len(spec)} {' '.join(spec)};", "DefectList"]
        for k, dfc in enumerate(p["defects"]):
            vals = [str(dfc.get(c, 0)) for c in spec if c not in ("IMAGECOUNT", "IMAGELIST")]
            if "IMAGELIST" in spec:  # IMAGECOUNT n, IMAGELIST n (id type)*n: on the next line
                n = (k % 3) if image_list else 0
                out.append(" " + " ".join(vals) + f" {n} {n}")
                if n:
                    out.append(" " + " ".join(f"{k * 3 + i + 1} {i}" for i in range(n)))
            else:
                out.append(" " + " ".join(vals))
        out[-1] += ";"
        nd = len(p["defects"])
        out += ["SummarySpec 5 TESTNO NDEFECT DEFDENSITY NDIE NDEFDIE;", "SummaryList",
                f" 1 {nd} {nd / max(len(p['plan']), 1):.6f} {len(p['plan'])} {p['fails']};"]
    out.append("EndOfFile;")
    return "\n".join(out) + "\n"


def _text_18(plans: list[dict], *, lot: str, step: str, device: str, tool: tuple[str, str, str], t: datetime,
             spec: Sequence[str]) -> str:
    d, hms = _date(t, True), t.strftime("%H:%M:%S")
    q = lambda *vals: ", ".join(f'"{v}"' for v in vals)  # noqa: E731
    out = ['Record FileRecord "1.8"', "{", f"  Field FileTimestamp 2 {{{q(d, hms)}}}",
           f"  Field InspectionStationID 3 {{{q(*tool)}}}", f"  Field SampleType 1 {{{q('WAFER')}}}",
           f'  Record LotRecord "{lot}"', "  {", f"    Field DeviceID 1 {{{q(device)}}}",
           f"    Field StepID 1 {{{q(step)}}}", f"    Field ResultTimestamp 2 {{{q(d, hms)}}}",
           f"    Field SampleOrientationMarkType 1 {{{q('NOTCH')}}}",
           f"    Field OrientationMarkLocation 1 {{{q('DOWN')}}}",
           "    List ClassLookupList", "    {", "      Columns 2 { int32 CLASSNUMBER, string CLASSNAME }",
           f"      Data {len(CLASS_NAMES)}", "      {"]
    out += [f'        {k} "{v}";' for k, v in CLASS_NAMES.items()] + ["      }", "    }"]
    types = {"XREL": "float", "YREL": "float", "XSIZE": "float", "YSIZE": "float", "DEFECTAREA": "float",
             "DSIZE": "float"}
    for p in plans:
        out += [f'    Record WaferRecord "{p["wafer"]}"', "    {"]
        if p["diameter_mm"] is not None:
            out.append(f"      Field SampleSize 2 {{1, {p['diameter_mm']:.6f}}}")
        out += [f"      Field DiePitch 2 {{{p['pitch'][0]:.10e}, {p['pitch'][1]:.10e}}}",
                "      Field DieOrigin 2 {0.0, 0.0}",
                f"      Field SampleCenterLocation 2 {{{p['center'][0]:.10e}, {p['center'][1]:.10e}}}",
                f"      Field SlotNumber 1 {{{p['slot']}}}"]
        if p["plan"]:
            out += ["      Record TestRecord 1", "      {", "        List SampleTestPlanList", "        {",
                    "          Columns 2 { int32 XINDEX, int32 YINDEX }", f"          Data {len(p['plan'])}",
                    "          {"]
            out += [f"            {x} {y};" for x, y in p["plan"]] + ["          }", "        }", "      }"]
        cols = ", ".join(f"{types.get(c, 'int32')} {c}" for c in spec)
        out += ["      List DefectList", "      {", f"        Columns {len(spec)} {{ {cols} }}",
                f"        Data {len(p['defects'])}", "        {"]
        out += ["          " + " ".join(str(dfc.get(c, 0)) for c in spec) + ";" for dfc in p["defects"]]
        out += ["        }", "      }", "    }"]
    out += ["  }", "}", "EndOfFile;"]
    return "\n".join(out) + "\n"


def write_klarf(path: str | Path, wafers: Sequence[Any], *, version: str = "1.2", lot: str = "LOT1",
                step: str = "STEP1", device: str = "DEV1", tool: tuple[str, str, str] = ("KLA", "2367", "TOOL01"),
                time: datetime = datetime(2024, 3, 5, 14, 30, 0), spec: Sequence[str] | None = None,
                image_list: bool = True, compress: bool = False, crlf: bool = False, bom: bool = False,
                **plan_options: Any) -> list[dict[str, Any]]:
    """Write `wafers` (maps or (wafer_id, map) pairs) as one KLARF file; returns `plan_wafers`' records.

    spec: the defect columns in file order (default all of a 1.2 / 1.8 file); plan_options: see `plan_wafers`
    (sampled, sample_share, defects_per_fail, pitch, classes, seed, wafer_ids, diameter).
    """
    plans = plan_wafers(wafers, **plan_options)
    if version == "1.2":
        text = _text_12(plans, lot=lot, step=step, device=device, tool=tool, t=time, spec=spec or SPEC_12,
                        image_list=image_list)
    elif version == "1.8":
        text = _text_18(plans, lot=lot, step=step, device=device, tool=tool, t=time, spec=spec or SPEC_18)
    else:
        raise ValueError(f"version must be '1.2' or '1.8' (got {version!r})")
    data = text.replace("\n", "\r\n").encode() if crlf else text.encode()
    data = (b"\xef\xbb\xbf" + data) if bom else data
    Path(path).write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return plans


def trim(m: np.ndarray) -> np.ndarray:
    """`m` without all-zero border rows and columns."""
    rows, cols = np.flatnonzero((m > 0).any(1)), np.flatnonzero((m > 0).any(0))
    if not len(rows):
        return m[:0, :0]
    return m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


__all__ = ["write_klarf", "plan_wafers", "circle_fit", "circle_map", "die_indices", "trim"]
