"""Processed MixedWM38 pickles (e.g. ``train_1_split.pkl.xz``): ``waferMap`` (0/128/255),
``label`` (list of 8 ints), ``failureType`` (e.g. 'C-EL-S') and boolean columns ``Normal``,
``Center``, ``Donut``, ``Edge-Loc``, ``Edge-Ring``, ``Loc``, ``Near-full``, ``Scratch``, ``Random``.

Labels come from the 8 boolean label columns (not ``Normal``) in MIXEDWM38_CLASSES order; without
them from the ``label`` lists. ``failureType`` is kept in ``meta``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adrcs.data import formats as F
from adrcs.data.wafer_map_set import MIXEDWM38_CLASSES, WaferMapSet

NAME = "mixedwm38-pickle"


def _has_label_lists(df: pd.DataFrame) -> bool:
    if "label" not in df.columns:
        return False
    first = df["label"].dropna().head(5)
    return len(first) > 0 and all(isinstance(v, (list, tuple, np.ndarray)) for v in first)


def sniff(path: Path, obj: Any) -> bool:
    if not isinstance(obj, pd.DataFrame) or F.map_column(obj) is None:
        return False
    return all(c in obj.columns for c in MIXEDWM38_CLASSES) or _has_label_lists(obj)


def read(path: Path, obj: pd.DataFrame) -> WaferMapSet:
    col = F.map_column(obj)
    maps = F.to_die_codes(obj[col].to_numpy(), path)
    if all(c in obj.columns for c in MIXEDWM38_CLASSES):
        block = obj[list(MIXEDWM38_CLASSES)]
        raw = block.astype("float64").to_numpy() if not block.isna().to_numpy().any() else block.to_numpy(dtype="float64", na_value=np.nan)
        labels = F.multi_hot(path, raw, "the label columns")
    else:
        labels = F.multi_hot(path, list(obj["label"].to_numpy()), "the label list")
    skip = (col, "label", "Normal", *MIXEDWM38_CLASSES)
    meta = F.make_meta(path, obj.index, F.scalar_columns(obj, skip=skip))
    return WaferMapSet(maps=maps, labels=labels, class_names=list(MIXEDWM38_CLASSES), meta=meta, multilabel=True)
