"""Write the KLARF samples shipped in src/adrcs/samples/ from maps of wm811k_sample_val.pkl.xz (reproducible).

  defects_sample.klarf      KLARF 1.2, 10 wafers (one small map of each WM-811K class, then the next small one)
  defects_sample_18.klarf   KLARF 1.8, 4 wafers

Wafer ids are ``W<row>`` (the map's row in wm811k_sample_val.pkl.xz), lot ``WM811K-VAL``. Geometry, test plan
(every die) and defects (1-2 per failing die) come from ``tests/helpers/klarf_writer.plan_wafers``; the file
syntax is written by the independent ``klarfio`` package (GPL-3.0, only needed here: ``pip install klarfio``)
so the reader is not only tested against its own writer. Without klarfio the test helper's writer is used
(``--own-writer`` forces it).

Usage: python scripts/make_klarf_samples.py [--out src/adrcs/samples] [--seed 0] [--own-writer]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from helpers.klarf_writer import CLASS_NAMES, SPEC_12, SPEC_18, plan_wafers, write_klarf  # noqa: E402

from adrcs.data.loader import load  # noqa: E402

LOT = "WM811K-VAL"
TIME = datetime(2024, 3, 5, 14, 30, 0)
MAX_DIES = 600  # small maps keep each file under 200 KB
# the 1.2 defect columns (SPEC_12 less CLUSTERNUMBER .. REVIEWSAMPLE, to stay small)
SPEC = [c for c in SPEC_12 if c not in ("CLUSTERNUMBER", "ROUGHBINNUMBER", "FINEBINNUMBER", "REVIEWSAMPLE")]
PLAN_OPTIONS = {"defects_per_fail": (1, 2), "pitch": (10000.0, 8000.0), "classes": (0, 1, 7, 12), "digits": 1}


def pick(ds, n12: int = 10, n18: int = 4) -> tuple[list[int], list[int]]:
    """Rows for the 1.2 file (the first small map of each class, then the next small ones) and the 1.8 file."""
    small = [i for i, m in enumerate(ds.maps) if int((m > 0).sum()) <= MAX_DIES]
    first = []
    for c in range(len(ds.class_names)):
        row = next((i for i in small if ds.labels[i] == c), None)
        if row is not None:
            first.append(row)
    rest = [i for i in small if i not in first]
    rows12 = (first + rest)[:n12]
    rows18 = [i for i in rest if i not in rows12][:n18]
    return sorted(rows12), rows18


def _f(v: float) -> float | int:
    v = float(v)
    return int(v) if v.is_integer() else v


def klarfio_12(path: Path, plans: list[dict]) -> None:
    """KLARF 1.2 written by klarfio, one export per wafer joined into one file (klarfio holds one wafer)."""
    import klarfio

    d, hms = TIME.strftime("%m-%d-%y"), TIME.strftime("%H:%M:%S")
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, p in enumerate(plans):
            data: dict = {}
            if k == 0:
                data.update({"FileVersion": [1, 2], "FileTimestamp": [d, hms],
                             "InspectionStationID": ['"KLA"', '"2367"', '"TOOL01"'], "SampleType": ["WAFER"],
                             "ResultTimestamp": [d, hms], "LotID": [f'"{LOT}"'], "DeviceID": ['"DEV1"'],
                             "SetupID": ['"SETUP"', d, hms], "StepID": ['"STEP1"'],
                             "SampleOrientationMarkType": ["NOTCH"], "OrientationMarkLocation": ["DOWN"],
                             "DieOrigin": [0.0, 0.0]})
            lookup = [len(CLASS_NAMES)]
            for num, label in CLASS_NAMES.items():
                lookup += ["\n", num, f'"{label}"']
            plan = [len(p["plan"])]
            for x, y in p["plan"]:
                plan += ["\n", x, y]
            rows = []
            for j, dfc in enumerate(p["defects"]):
                row = [_f(dfc.get(c, 0)) if not isinstance(dfc.get(c, 0), int) else dfc.get(c, 0)
                       for c in SPEC[:-2]]
                rows.append(row + ([1, f"1 {j + 1} 0"] if j % 2 else [0, 0]))  # IMAGECOUNT, IMAGELIST n (id type)*n
            nd = len(p["defects"])
            data.update({"WaferID": [f'"{p["wafer"]}"'], "Slot": [p["slot"]], "SampleSize": [1, p["diameter_mm"]],
                         "DiePitch": list(map(float, p["pitch"])),
                         "SampleCenterLocation": list(map(float, p["center"])), "ClassLookup": lookup,
                         "InspectionTest": [1], "SampleTestPlan": plan,
                         "AreaPerTest": [float(len(p["plan"]) * p["pitch"][0] * p["pitch"][1])],
                         "DefectList": {"Columns": [{"Type": "object", "Column": c} for c in SPEC], "Data": rows},
                         "SummarySpec": [5, "TESTNO", "NDEFECT", "DEFDENSITY", "NDIE", "NDEFDIE"],
                         "SummaryShortList": [1, nd, nd / len(p["plan"]), len(p["plan"]), p["fails"]]})
            kf = klarfio.klarf(version="1.2")
            kf.data = {"FileRecord_1.2": data}
            out = Path(tmp) / f"w{k}.klarf"
            kf.export_klarf(str(out))
            text = out.read_text()
            parts.append(text[: text.rindex("EndOfFile;")])
    path.write_text("".join(parts) + "EndOfFile;\n")


def klarfio_18(path: Path, plans: list[dict]) -> None:
    """KLARF 1.8 written by klarfio (its nested-dict model: Records, Fields, Lists)."""
    import klarfio

    d, hms = TIME.strftime("%m-%d-%Y"), TIME.strftime("%H:%M:%S")
    lot: dict = {"RecordName": LOT, "DeviceID": ["DEV1"], "StepID": ["STEP1"], "ResultTimestamp": [d, hms],
                 "SampleOrientationMarkType": ["NOTCH"], "OrientationMarkLocation": ["DOWN"],
                 "ClassLookupList": {"Columns": [{"Type": "int32", "Column": "CLASSNUMBER"},
                                                 {"Type": "string", "Column": "CLASSNAME"}],
                                     "Data": [[k, v] for k, v in CLASS_NAMES.items()]}}
    floats = {"XREL", "YREL", "XSIZE", "YSIZE", "DEFECTAREA", "DSIZE"}
    for p in plans:
        lot[f"WaferRecord_{p['wafer']}"] = {
            "RecordName": p["wafer"], "SampleSize": [1, p["diameter_mm"]], "DiePitch": list(map(float, p["pitch"])),
            "DieOrigin": [0.0, 0.0], "SampleCenterLocation": list(map(float, p["center"])), "SlotNumber": [p["slot"]],
            "TestRecord_1": {"RecordName": "1", "AreaPerTest": [float(len(p["plan"]) * p["pitch"][0] * p["pitch"][1])],
                             "SampleTestPlanList": {"Columns": [{"Type": "int32", "Column": "XINDEX"},
                                                                {"Type": "int32", "Column": "YINDEX"}],
                                                    "Data": [[int(x), int(y)] for x, y in p["plan"]]}},
            "DefectList": {"Columns": [{"Type": "float" if c in floats else "int32", "Column": c} for c in SPEC_18],
                           "Data": [[float(dfc[c]) if c in floats else int(dfc[c]) for c in SPEC_18]
                                    for dfc in p["defects"]]},
        }
    kf = klarfio.klarf(version="1.8")
    kf.data = {"FileRecord_1.8": {"RecordName": "1.8", "FileTimestamp": [d, hms],
                                  "InspectionStationID": ["KLA", "2367", "TOOL01"], "SampleType": ["WAFER"],
                                  f"LotRecord_{LOT}": lot}}
    kf.export_klarf(str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "src" / "adrcs" / "samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--own-writer", action="store_true", help="use tests/helpers/klarf_writer, not klarfio")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.own_writer:
            raise ImportError
        import klarfio  # noqa: F401
        independent = True
    except ImportError:
        independent = False
    ds = load(REPO / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz")
    rows12, rows18 = pick(ds)
    for file, version, rows, seed in (("defects_sample.klarf", "1.2", rows12, args.seed),
                                      ("defects_sample_18.klarf", "1.8", rows18, args.seed + 1)):
        wafers = [(f"W{i}", ds.maps[i]) for i in rows]
        path = args.out / file
        if independent:
            plans = plan_wafers(wafers, seed=seed, **PLAN_OPTIONS)
            (klarfio_12 if version == "1.2" else klarfio_18)(path, plans)
        else:
            write_klarf(path, wafers, version=version, lot=LOT, time=TIME, seed=seed,
                        spec=SPEC if version == "1.2" else SPEC_18, **PLAN_OPTIONS)
        back = load(path)
        for (wid, m), got in zip(wafers, back.maps):
            rows_, cols_ = np.nonzero(m > 0)
            want = m[rows_.min(): rows_.max() + 1, cols_.min(): cols_.max() + 1]
            if not np.array_equal(want, got):
                raise SystemExit(f"{file}: wafer {wid} does not read back as its map")
        size = path.stat().st_size
        print(f"{path}: KLARF {version}, {len(wafers)} wafers, {size / 1024:.0f} KiB, "
              f"writer {'klarfio' if independent else 'tests/helpers/klarf_writer'}")
        if size > 200 * 1024:
            raise SystemExit(f"{file} is over 200 KB: lower MAX_DIES")
    return 0


if __name__ == "__main__":
    sys.exit(main())
