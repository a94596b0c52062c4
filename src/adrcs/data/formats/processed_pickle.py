"""Processed WM-811K pickles (e.g. ``train_1_split.pkl.xz``): a DataFrame with ``waferMap``
(2-D arrays, 0/128/255 or 0/1/2), ``failureType`` (class names) and/or ``failureCode`` (0..8).

Also the fallback reader for any table with a wafer-map column: without label columns every map
is unlabeled. Other scalar columns are kept in ``meta``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from adrcs.data import formats as F
from adrcs.data.wafer_map_set import WaferMapSet

NAME = "wm811k-pickle"
LABEL_COLUMNS = ("failureType", "failureCode")


def sniff(path: Path, obj: Any) -> bool:
    return isinstance(obj, pd.DataFrame) and F.map_column(obj) is not None


def read(path: Path, obj: pd.DataFrame) -> WaferMapSet:
    col = F.map_column(obj)
    maps = F.to_die_codes(obj[col].to_numpy(), path)
    labels, names = F.wm811k_labels(path, obj)
    extra = F.scalar_columns(obj, skip=(col, *LABEL_COLUMNS))
    meta = F.make_meta(path, obj.index, extra)
    return WaferMapSet(maps=maps, labels=labels, class_names=names, meta=meta, multilabel=False)
