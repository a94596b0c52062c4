"""Kaggle's raw WM-811K ``LSWMD.pkl``: a DataFrame with ``waferMap`` (0/1/2), ``dieSize``,
``lotName``, ``waferIndex``, ``trianTestLabel`` (sic; or ``trainTestLabel``) and ``failureType``.

Label cells are nested arrays like ``array([['Loc']], dtype=object)``, or an empty array for an
unlabeled map; plain strings, None/NaN and ``[]`` are accepted too. Unlabeled maps keep label -1.
``lotName``, ``waferIndex``, ``dieSize`` and the train/test split (as ``trainTestLabel``, None where
absent) go to ``meta``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adrcs.data import formats as F
from adrcs.data.labels import clean_label
from adrcs.data.wafer_map_set import WaferMapSet

NAME = "lswmd"
SPLIT_COLUMNS = ("trianTestLabel", "trainTestLabel")
MARKER_COLUMNS = ("lotName", "dieSize", "waferIndex") + SPLIT_COLUMNS


def sniff(path: Path, obj: Any) -> bool:
    return (
        isinstance(obj, pd.DataFrame)
        and F.map_column(obj) is not None
        and any(c in obj.columns for c in MARKER_COLUMNS)
    )


def read(path: Path, obj: pd.DataFrame) -> WaferMapSet:
    col = F.map_column(obj)
    maps = F.to_die_codes(obj[col].to_numpy(), path)
    labels, names = F.wm811k_labels(path, obj)

    extra: dict[str, Any] = {}
    for c in ("lotName", "waferIndex", "dieSize"):
        if c in obj.columns:
            values = obj[c].to_numpy()
            extra[c] = [clean_label(v) for v in values] if c == "lotName" else _numbers(values)
    split = next((c for c in SPLIT_COLUMNS if c in obj.columns), None)
    if split is not None:
        extra["trainTestLabel"] = [clean_label(v) for v in obj[split].to_numpy()]
    skip = {col, "failureType", "failureCode", *MARKER_COLUMNS}
    for c, values in F.scalar_columns(obj, skip=skip).items():
        extra.setdefault(c, values)
    meta = F.make_meta(path, obj.index, extra)
    return WaferMapSet(maps=maps, labels=labels, class_names=names, meta=meta, multilabel=False)


def _numbers(values: np.ndarray) -> np.ndarray:
    """A numeric column; cells may be nested arrays in the raw file."""
    if values.dtype != object:
        return values
    flat = [clean_label(v) for v in values]
    return pd.to_numeric(pd.Series(flat, dtype=object), errors="coerce").to_numpy()
