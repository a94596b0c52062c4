"""Write wafer maps in the processed WM-811K pickle format the loader reads back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adrcs.data.wafer_map_set import WM811K_CLASSES, WaferMapSet
from adrcs.errors import InputError

# die codes 0/1/2 -> the 0/128/255 of the processed pickles
_TO_255 = np.array([0, 128, 255], np.uint8)


def save_wafer_maps(ds: WaferMapSet, path: str | Path) -> Path:
    """Pickle a single-label set as a DataFrame: `waferMap` (0/128/255), `failureType`,
    `failureCode` (when every class is a WM-811K class) and the scalar meta columns.

    Compression follows the suffix (`.xz`, `.gz`, `.bz2`, `.zip`; none otherwise)."""
    if ds.multilabel:
        raise InputError(path, "writing multi-label sets is not supported; write single-label maps")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = np.array(list(ds.class_names) + [""], dtype=object)
    df = pd.DataFrame({"waferMap": [_TO_255[m] for m in ds.maps], "failureType": names[ds.labels]})
    if set(ds.class_names) <= set(WM811K_CLASSES):
        lut = np.array([WM811K_CLASSES.index(c) for c in ds.class_names] + [-1])
        df["failureCode"] = lut[ds.labels]
    for col in ds.meta.columns:
        if col not in ("source", "index") and col not in df.columns:
            df[col] = ds.meta[col].to_numpy()
    df["origin"] = ds.meta["source"].astype(str).to_numpy()
    df.to_pickle(path)
    return path
