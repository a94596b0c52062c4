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
    plain_strings(df).to_pickle(path)
    return path


def plain_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain object arrays of str: with pyarrow installed pandas stores text as Arrow arrays,
    which the strict unpickler (rightly) refuses, so pickles written here would not load anywhere else."""
    for col in df.columns:
        if pd.api.types.is_string_dtype(df[col].dtype) and df[col].dtype != object:
            df[col] = df[col].astype(object)
    df.columns = pd.Index(list(df.columns), dtype=object)  # the column names are text too
    if pd.api.types.is_string_dtype(df.index.dtype):
        df.index = pd.Index(list(df.index), dtype=object)
    return df


# meta columns that hold the lot / wafer id, by format (first found wins)
_LOT_COLUMNS = ("lot", "lotName", "lot_id")
_WAFER_COLUMNS = ("wafer", "waferIndex", "wafer_id")


def _id_strings(values) -> list[str]:
    """Ids as strings: whole floats without '.0', missing values as ''."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def _meta_ids(ds: WaferMapSet, columns: tuple[str, ...]) -> np.ndarray:
    for c in columns:
        if c in ds.meta.columns:
            return np.array(_id_strings(ds.meta[c].tolist()), dtype=str)
    return np.full(len(ds), "", dtype="<U1")


def save_wafer_maps_npz(ds: WaferMapSet, path: str | Path) -> Path:
    """Write `ds` in the ``adrcs convert`` npz layout (`adrcs.data.formats.adrcs_npz`), readable with
    ``numpy.load(allow_pickle=False)``: maps stored flat with their shapes, labels as strings (or
    multi-hot bools), lot and wafer ids. `path` must end in ``.npz``."""
    from adrcs.data.formats.adrcs_npz import FORMAT, VERSION

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(path, "the output of convert must be an .npz file (OUT.npz)")
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = [np.ascontiguousarray(m, np.uint8) for m in ds.maps]
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "maps_flat": np.concatenate([m.ravel() for m in maps]) if maps else np.zeros(0, np.uint8),
        "shapes": np.array([m.shape for m in maps], np.int64).reshape(-1, 2),
        "class_names": np.array(list(ds.class_names), dtype=str).reshape(-1),
        "lot": _meta_ids(ds, _LOT_COLUMNS),
        "wafer": _meta_ids(ds, _WAFER_COLUMNS),
    }
    if ds.multilabel:
        labeled = ds.labeled_mask
        arrays["multi_labels"] = (ds.labels > 0) & labeled[:, None]
        arrays["labeled"] = labeled
    else:
        names = np.array(list(ds.class_names) + [""], dtype=str)
        arrays["labels"] = names[ds.labels]  # -1 (unlabeled) indexes the trailing ""
    with open(path, "wb") as f:  # a file object: numpy would append .npz to a name without it
        np.savez_compressed(f, **arrays)
    return path
