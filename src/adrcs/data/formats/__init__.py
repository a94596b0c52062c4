"""Wafer-map file formats.

Each format module has ``NAME``, ``sniff(path, obj) -> bool`` and ``read(path, obj) -> WaferMapSet``,
where ``obj`` is what the loader already read from the file: the unpickled object, or for an npz
file an ``NpzArrays`` dict of its arrays. The loader asks the modules in ``FORMATS`` order.

This module also holds the helpers the formats share: die-code conversion, label columns, meta.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from adrcs.data.labels import clean_label, normalize_name, wm811k_class_names
from adrcs.data.wafer_map_set import MIXEDWM38_CLASSES, WM811K_CLASSES
from adrcs.errors import InputError

MAP_COLUMN = "waferMap"


class NpzArrays(dict):
    """The arrays of an npz file, by name (``arr_0``, ``arr_1``, ...)."""


def map_column(df: pd.DataFrame) -> str | None:
    """Name of the wafer-map column: 'waferMap', or a case/underscore variant of it."""
    if MAP_COLUMN in df.columns:
        return MAP_COLUMN
    for c in df.columns:
        if isinstance(c, str) and c.replace("_", "").replace(" ", "").lower() == "wafermap":
            return c
    return None


# ---------------------------------------------------------------- die codes

# 0 -> 0 (off wafer), 128 -> 1 (good), 255 -> 2 (failing); anything else -> 3 (invalid).
_LUT_255 = np.full(256, 3, np.uint8)
_LUT_255[0], _LUT_255[128], _LUT_255[255] = 0, 1, 2
_CODES_HELP = "the known die codes (0/1/2 or 0/128/255)"


def _bad_values(path: Path, i: int, m: np.ndarray) -> InputError:
    vals = np.unique(m)
    shown = [v.item() if hasattr(v, "item") else v for v in vals[:12]]
    shown = [int(v) if isinstance(v, float) and v.is_integer() else v for v in shown]
    more = f" and {len(vals) - 12} more" if len(vals) > 12 else ""
    return InputError(path, f"map {i} has values outside {_CODES_HELP}: {shown}{more}")


def _as_uint8(path: Path, i: int, m: np.ndarray) -> np.ndarray:
    """`m` (2-D, any numeric dtype) as uint8 holding its exact values; error when it can't be."""
    kind = m.dtype.kind
    if kind == "b":
        return m.astype(np.uint8)
    if kind in "iu":
        if m.min() < 0 or m.max() > 255:
            raise _bad_values(path, i, m)
        return m.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(m).all() or m.min() < 0 or m.max() > 255 or (m != np.floor(m)).any():
            raise _bad_values(path, i, m)
        return m.astype(np.uint8)
    try:
        f = m.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(path, f"map {i} holds non-numeric values (dtype {m.dtype})") from None
    return _as_uint8(path, i, f)


def _one_map(path: Path, i: int, m: Any) -> np.ndarray:
    if not isinstance(m, np.ndarray):
        if m is None or isinstance(m, (str, bytes, int, float, np.generic)):
            raise InputError(path, f"map {i} is not an array (got {type(m).__name__})")
        try:
            m = np.asarray(m)
        except (TypeError, ValueError):
            raise InputError(path, f"map {i} is not an array (got {type(m).__name__})") from None
    if m.ndim != 2:
        raise InputError(path, f"map {i} is not 2-D (shape {tuple(m.shape)})")
    if m.size == 0:
        raise InputError(path, f"map {i} is empty (shape {tuple(m.shape)})")
    if m.dtype != np.uint8:
        m = _as_uint8(path, i, m)
    top = m.max()
    if top <= 2:
        return m
    codes = _LUT_255[m]
    if codes.max() > 2:
        raise _bad_values(path, i, m)
    return codes


def to_die_codes(maps: Iterable[Any] | np.ndarray, path: str | Path) -> list[np.ndarray]:
    """Every map as a 2-D uint8 array of die codes 0/1/2.

    Per map: values all in {0,1,2} are kept; all in {0,128,255} are mapped 0->0, 128->1, 255->2;
    anything else raises InputError naming the map (its row number) and its values.
    `maps` is a sequence of arrays or an (N, H, W) array.
    """
    path = Path(path)
    if isinstance(maps, np.ndarray) and maps.ndim == 3 and maps.dtype.kind in "biuf":
        stack = maps
        if stack.dtype == np.uint8 and len(stack) and stack[0].size:
            # fast path for a whole stack in one code scheme
            if stack.max() <= 2:
                return list(stack)
            codes = _LUT_255[stack]
            if codes.max() <= 2:
                return list(codes)
        maps = list(stack)  # per map, to name the bad one
    elif isinstance(maps, np.ndarray) and maps.dtype != object and maps.ndim != 1:
        raise InputError(path, f"expected a list of 2-D maps or an (N, H, W) array; got shape {maps.shape}")
    return [_one_map(path, i, m) for i, m in enumerate(maps)]


# ---------------------------------------------------------------- labels


def single_labels(values: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Single-label codes and class names from raw label cells (see ``labels.clean_label``).

    Cells without a label get -1. Names are normalised; class names follow
    ``labels.wm811k_class_names``.
    """
    cleaned = [clean_label(v) for v in values]
    codes, uniques = pd.factorize(pd.Series(cleaned, dtype=object), use_na_sentinel=True)
    norm = [normalize_name(u) for u in uniques]
    names = wm811k_class_names(norm)
    lut = np.array([names.index(n) for n in norm] + [-1], dtype=np.int64)
    return lut[codes], names  # code -1 indexes the trailing -1


def failure_codes(path: Path, values: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Single-label codes from a `failureCode` column (0..8 in WM811K_CLASSES order; NaN/-1: unlabeled)."""
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    labels = np.where(np.isnan(arr), -1, arr)
    bad = sorted({v for v in labels[(labels < -1) | (labels >= len(WM811K_CLASSES)) | (labels != np.floor(labels))]})
    if bad:
        raise InputError(path, f"failureCode values outside 0..{len(WM811K_CLASSES) - 1}: {bad[:10]}")
    return labels.astype(np.int64), list(WM811K_CLASSES)


def multi_hot(path: Path, rows: Any, what: str) -> np.ndarray:
    """(N, 8) int8 multi-hot labels in MIXEDWM38_CLASSES order; a row of -1 marks an unlabeled map.

    `rows` is an (N, 8) array or a sequence of length-8 sequences (None/NaN/empty rows: unlabeled).
    """
    width = len(MIXEDWM38_CLASSES)
    if isinstance(rows, np.ndarray) and rows.dtype != object:
        arr = rows
        if arr.ndim != 2 or arr.shape[1] != width:
            got = arr.shape[1] if arr.ndim == 2 else f"shape {arr.shape}"
            raise InputError(path, f"{what} has width {got}, expected {width} (one column per label: {', '.join(MIXEDWM38_CLASSES)})")
        arr = arr.astype(np.float64)
    else:
        arr = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            if r is None or (isinstance(r, float) and np.isnan(r)):
                continue
            r = np.asarray(r, dtype=np.float64).ravel()
            if r.size == 0:
                continue
            if r.size != width:
                raise InputError(path, f"{what} of map {i} has width {r.size}, expected {width} (one entry per label: {', '.join(MIXEDWM38_CLASSES)})")
            arr[i] = r
    unlabeled = np.isnan(arr).any(axis=1) | (arr < 0).all(axis=1)
    vals = arr[~unlabeled]
    if not np.isin(vals, (0, 1)).all():
        bad = sorted(set(vals[~np.isin(vals, (0, 1))].tolist()))[:10]
        raise InputError(path, f"{what} holds values other than 0/1: {bad}")
    out = np.zeros(arr.shape, np.int8)
    out[~unlabeled] = vals.astype(np.int8)
    out[unlabeled] = -1
    return out


# ---------------------------------------------------------------- meta


def make_meta(path: Path, index: Iterable[Any], columns: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per-map metadata: `source` (the file), `index` (row label in the file) and `columns`."""
    index = list(index)
    meta = pd.DataFrame({"source": [str(path)] * len(index), "index": index})
    for name, values in (columns or {}).items():
        meta[name] = list(values) if not isinstance(values, (np.ndarray, pd.Series)) else np.asarray(values)
    return meta


def scalar_columns(df: pd.DataFrame, skip: Iterable[str]) -> dict[str, Any]:
    """Columns of `df` (other than `skip`) that hold one scalar per row, for the meta table."""
    skip = set(skip)
    out = {}
    for c in df.columns:
        if c in skip or not isinstance(c, str):
            continue
        col = df[c]
        if col.dtype == object:
            first = col.dropna().head(20)
            if any(isinstance(v, (np.ndarray, list, tuple, dict)) for v in first):
                continue
        out[c] = col.to_numpy()
    return out


def check_lengths(path: Path, n_maps: int, n_labels: int, what: str) -> None:
    if n_maps != n_labels:
        raise InputError(path, f"{what} has {n_labels} rows but there are {n_maps} maps")


# ---------------------------------------------------------------- registry

from adrcs.data.formats import adrcs_npz, lswmd, mixedwm38_npz, mixedwm38_pickle, processed_pickle  # noqa: E402

# Most specific first: the processed-pickle reader takes any table with a wafer-map column.
FORMATS = [adrcs_npz, mixedwm38_npz, mixedwm38_pickle, lswmd, processed_pickle]


# Fab formats read from a byte stream (see adrcs.data.fab): sniffed on the first FAB_HEAD_BYTES decoded bytes.
from adrcs.data.formats import e142, klarf, sinf, stdf  # noqa: E402

FAB_FORMATS = [stdf, klarf, sinf, e142]
FAB_FORMAT_NAMES = tuple(m.NAME for m in FAB_FORMATS)
FAB_HEAD_BYTES = 4096


def detect_fab(head: bytes):
    """The fab format module whose ``sniff_bytes`` accepts the decoded first bytes `head`, or None."""
    for fmt in FAB_FORMATS:
        if fmt.sniff_bytes(head):
            return fmt
    return None


def detect(path: str | Path, obj: Any):
    """The first format module whose ``sniff`` accepts `obj`, or None."""
    for fmt in FORMATS:
        if fmt.sniff(Path(path), obj):
            return fmt
    return None


__all__ = [
    "FORMATS", "FAB_FORMAT_NAMES", "NpzArrays", "detect", "detect_fab", "to_die_codes", "single_labels", "failure_codes", "multi_hot",
    "make_meta", "scalar_columns", "map_column",
]


def wm811k_labels(path: Path, obj: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Single labels of a WM-811K-style table: from `failureType` names, else `failureCode`,
    else all unlabeled (-1)."""
    if "failureType" in obj.columns:
        return single_labels(obj["failureType"].to_numpy())
    if "failureCode" in obj.columns:
        return failure_codes(path, obj["failureCode"].to_numpy())
    return np.full(len(obj), -1, np.int64), list(WM811K_CLASSES)
