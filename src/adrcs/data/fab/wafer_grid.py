"""From dies with coordinates to wafer maps: the one place every fab reader's wafers become a `WaferMapSet`.

A reader gives one `FabWafer` per wafer: the die coordinates as the file has them, each die's status
(pass / fail / untested) and, where the format has them, its original bin and per-wafer metadata. Here the
coordinates become a grid (row 0 at the top), untested dies count as passing dies and in
``untested_count``, and every wafer gets the lot, wafer, count and yield columns of the meta table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from adrcs.data.limits import InputLimits
from adrcs.data.wafer_map_set import FAIL_DIE, GOOD_DIE, WM811K_CLASSES, WaferMapSet
from adrcs.errors import InputError, InputTooLarge

PASS, FAIL, UNTESTED = 1, 2, 3  # FabWafer.status values
UNTESTED_FLAG_SHARE = 0.20      # a wafer with more untested dies than this is flagged
NO_BIN = -1


@dataclass
class FabWafer:
    """One wafer as a fab reader found it.

    x, y: die coordinates (ints, one entry per die on the wafer; positions without an entry are off-wafer).
    status: per die 1 pass / 2 fail / 3 on the wafer but not tested or not inspected.
    bins: per die the original bin (or defect count, class...) the format gives; -1 where none. Optional.
    flip_x: larger x lies further left (STDF WCR POS_X = 'L'); flip_y: larger y lies further up (POS_Y = 'U').
    extent: (x_min, y_min, x_max, y_max) of the map when the format states it (SINF / E142 grids keep their
        off-wafer border); default the dies' bounding box.
    meta: per-wafer fields the format carries (part_type, test_program, start_time, tool, slot, ...).
    """

    lot: str
    wafer: str
    x: np.ndarray
    y: np.ndarray
    status: np.ndarray
    bins: np.ndarray | None = None
    flip_x: bool = False
    flip_y: bool = False
    extent: tuple[int, int, int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


_QUOTES = "\"' \t\r\n"


def normalize_wafer_id(value: Any) -> str:
    """A lot or wafer id as comparable text: quotes and spaces trimmed, leading zeros of a number dropped
    (``" '07' "`` -> ``"7"``, ``"W07"`` stays ``"W07"``); None / NaN -> ``""``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip(_QUOTES)
    if re.fullmatch(r"[+]?\d+", text):
        return str(int(text))
    return text


def grid(w: FabWafer, name: str, limits: InputLimits) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """(die-code map, bin grid or None, placement) of one wafer; placement holds the numbers that map grid
    positions back to die coordinates (``die_x0``, ``die_y0``, ``flip_x``, ``flip_y``)."""
    x = np.asarray(w.x, dtype=np.int64).ravel()
    y = np.asarray(w.y, dtype=np.int64).ravel()
    status = np.asarray(w.status, dtype=np.uint8).ravel()
    if not (len(x) == len(y) == len(status)):
        raise InputError(name, f"wafer {w.wafer!r}: {len(x)} x, {len(y)} y and {len(status)} die results differ")
    if len(x) == 0:
        raise InputError(name, f"wafer {w.wafer!r} has no die coordinates")
    if w.extent is not None:
        x0, y0, x1, y1 = (int(v) for v in w.extent)
        if (x < x0).any() or (x > x1).any() or (y < y0).any() or (y > y1).any():
            raise InputError(name, f"wafer {w.wafer!r}: dies lie outside the stated map size")
    else:
        x0, x1, y0, y1 = int(x.min()), int(x.max()), int(y.min()), int(y.max())
    cols, rows = x1 - x0 + 1, y1 - y0 + 1
    if max(cols, rows) > limits.max_map_side:
        raise InputTooLarge(name, f"wafer {w.wafer!r} spans {cols}x{rows} dies, larger than the limit of "
                                  f"{limits.max_map_side} per side")
    c = (x1 - x) if w.flip_x else (x - x0)
    r = (y - y0) if not w.flip_y else (y1 - y)
    m = np.zeros((rows, cols), np.uint8)
    m[r, c] = np.where(status == FAIL, FAIL_DIE, GOOD_DIE)  # later entries win (a reader resolves retests)
    bins = None
    if w.bins is not None:
        b = np.asarray(w.bins, dtype=np.int64).ravel()
        if len(b) != len(x):
            raise InputError(name, f"wafer {w.wafer!r}: {len(b)} bins for {len(x)} dies")
        bins = np.full((rows, cols), NO_BIN, np.int32)
        bins[r, c] = b
    untested = np.zeros((rows, cols), bool)
    untested[r, c] = status == UNTESTED
    place = {"die_x0": x1 if w.flip_x else x0, "die_y0": y1 if w.flip_y else y0, "flip_x": bool(w.flip_x),
             "flip_y": bool(w.flip_y), "untested_count": int(untested.sum())}
    return m, bins, place


def map_counts(m: np.ndarray, untested: int = 0) -> dict[str, Any]:
    """die_count (dies on the wafer), fail_count and yield (passing share of the tested dies) of a die-code map."""
    dies = int((m > 0).sum())
    fails = int((m == FAIL_DIE).sum())
    tested = dies - int(untested)
    return {"die_count": dies, "fail_count": fails,
            "yield": (tested - fails) / tested if tested > 0 else float("nan")}


def wafer_set(name: str, wafers: Sequence[FabWafer], limits: InputLimits, source: str | None = None) -> WaferMapSet:
    """The `WaferMapSet` of a fab file's wafers: unlabelled maps (labels -1, WM-811K class names), meta columns
    ``source, index, lot, wafer, untested_count, untested_flag, die_count, fail_count, yield``, the placement
    columns of `grid`, then each wafer's own ``meta``; bin grids in ``WaferMapSet.bins``."""
    if not wafers:
        raise InputError(name, "holds no wafers with die coordinates")
    if len(wafers) > limits.max_maps:
        raise InputTooLarge(name, f"holds {len(wafers)} wafers, more than the limit of {limits.max_maps} maps")
    maps, bins, rows = [], [], []
    for i, w in enumerate(wafers):
        m, b, place = grid(w, name, limits)
        maps.append(m)
        bins.append(b)
        counts = map_counts(m, place["untested_count"])
        untested_share = place["untested_count"] / counts["die_count"] if counts["die_count"] else 0.0
        rows.append({"source": source or name, "index": i, "lot": normalize_wafer_id(w.lot),
                     "wafer": normalize_wafer_id(w.wafer), "untested_count": place["untested_count"],
                     "untested_flag": bool(untested_share > UNTESTED_FLAG_SHARE), **counts,
                     **{k: v for k, v in place.items() if k != "untested_count"}, **dict(w.meta)})
    meta = pd.DataFrame(rows)
    labels = np.full(len(maps), -1, np.int64)
    ds = WaferMapSet(maps=maps, labels=labels, class_names=list(WM811K_CLASSES), meta=meta, multilabel=False,
                     bins=bins if any(b is not None for b in bins) else None)
    flagged = int(meta["untested_flag"].sum())
    if flagged:
        ds.notes["untested_flagged"] = flagged
    return ds
