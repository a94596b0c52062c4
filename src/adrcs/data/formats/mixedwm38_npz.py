"""The public MixedWM38 ``Wafer_Map_Datasets.npz``: ``arr_0`` maps (N, 52, 52), values 0/1/2
(0/128/255 accepted), and ``arr_1`` (N, 8) multi-hot labels in MIXEDWM38_CLASSES order.

Without ``arr_1`` every map is unlabeled. An object array of differently sized maps is accepted.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data import formats as F
from adrcs.data.wafer_map_set import MIXEDWM38_CLASSES, WaferMapSet
from adrcs.errors import InputError

NAME = "mixedwm38-npz"


def sniff(path: Path, obj: Any) -> bool:
    return isinstance(obj, Mapping) and "arr_0" in obj


def read(path: Path, obj: Mapping) -> WaferMapSet:
    arr = np.asarray(obj["arr_0"])
    if arr.dtype == object and arr.ndim == 1:
        maps = F.to_die_codes(list(arr), path)
    elif arr.ndim == 3:
        maps = F.to_die_codes(arr, path)
    else:
        raise InputError(path, f"arr_0 should hold the maps as an (N, H, W) array; got shape {arr.shape}")
    if "arr_1" in obj:
        raw = np.asarray(obj["arr_1"])
        if raw.dtype != object and raw.ndim == 1 and len(maps) == 1 and raw.size == len(MIXEDWM38_CLASSES):
            raw = raw[None, :]
        if raw.ndim >= 1:
            F.check_lengths(path, len(maps), len(raw), "arr_1 (labels)")
        labels = F.multi_hot(path, raw if raw.dtype != object else list(raw), "arr_1 (labels)")
    else:
        labels = np.full((len(maps), len(MIXEDWM38_CLASSES)), -1, np.int8)
    meta = F.make_meta(path, range(len(maps)))
    return WaferMapSet(maps=maps, labels=labels, class_names=list(MIXEDWM38_CLASSES), meta=meta, multilabel=True)
