"""The ``adrcs convert`` npz: wafer maps of any sizes in plain arrays, readable with
``numpy.load(allow_pickle=False)`` (no pickled objects), so the service accepts it as an upload.

Arrays (N maps, K classes):

| array | dtype / shape | meaning |
|---|---|---|
| ``format`` | ``<U`` scalar | ``"adrcs-wafer-maps"`` |
| ``version`` | int scalar | 1 |
| ``maps_flat`` | uint8 (sum of H*W,) | every map's die codes 0/1/2, row-major, one after another |
| ``shapes`` | int64 (N, 2) | each map's (H, W) |
| ``class_names`` | ``<U`` (K,) | class (single-label) or label (multi-label) names, in order |
| ``labels`` | ``<U`` (N,) | single-label: the class name, ``""`` = unlabeled |
| ``multi_labels`` | bool (N, K) | multi-label instead of ``labels``: multi-hot rows |
| ``labeled`` | bool (N,) | multi-label: which rows carry labels |
| ``lot``, ``wafer`` | ``<U`` (N,) | lot and wafer id, ``""`` where unknown |
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data import formats as F
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError

NAME = "adrcs-npz"
FORMAT = "adrcs-wafer-maps"
VERSION = 1
MAX_SIDE = 1 << 20  # sanity bound before multiplying shapes (the loader's limits apply afterwards)


def sniff(path: Path, obj: Any) -> bool:
    return isinstance(obj, Mapping) and "format" in obj and str(np.asarray(obj["format"])) == FORMAT


def _strings(path: Path, obj: Mapping, key: str, n: int) -> list[str]:
    if key not in obj:
        return [""] * n
    arr = np.asarray(obj[key])
    if arr.dtype.kind != "U" or arr.shape != (n,):
        raise InputError(path, f"'{key}' should be a unicode array of shape ({n},); got {arr.dtype} {arr.shape}")
    return arr.tolist()


def _maps(path: Path, obj: Mapping) -> list[np.ndarray]:
    for key in ("maps_flat", "shapes"):
        if key not in obj:
            raise InputError(path, f"adrcs npz has no '{key}' array")
    flat, shapes = np.asarray(obj["maps_flat"]), np.asarray(obj["shapes"])
    if flat.dtype != np.uint8 or flat.ndim != 1:
        raise InputError(path, f"'maps_flat' should be 1-D uint8; got {flat.dtype} {flat.shape}")
    if shapes.dtype.kind not in "iu" or shapes.ndim != 2 or shapes.shape[1] != 2:
        raise InputError(path, f"'shapes' should be an (N, 2) integer array; got {shapes.dtype} {shapes.shape}")
    if len(shapes) and (shapes.min() < 1 or shapes.max() > MAX_SIDE):
        raise InputError(path, f"'shapes' holds sides outside 1..{MAX_SIDE}")
    sizes = shapes.astype(np.int64).prod(axis=1)
    if int(sizes.sum()) != flat.size:
        raise InputError(path, f"'shapes' add up to {int(sizes.sum())} dies but 'maps_flat' holds {flat.size}")
    ends = np.cumsum(sizes)
    maps = [flat[e - s:e].reshape(h, w) for e, s, (h, w) in zip(ends, sizes, shapes.tolist())]
    return F.to_die_codes(maps, path)


def read(path: Path, obj: Mapping) -> WaferMapSet:
    version = int(np.asarray(obj.get("version", -1)))
    if version != VERSION:
        raise InputError(path, f"adrcs npz version {version} is not supported (this ADRCS reads version {VERSION})")
    maps = _maps(path, obj)
    n = len(maps)
    names = _strings(path, obj, "class_names", len(np.asarray(obj.get("class_names", []))))
    if "multi_labels" in obj:
        hot = np.asarray(obj["multi_labels"])
        labeled = np.asarray(obj.get("labeled", np.ones(n, bool)))
        if hot.dtype != bool or hot.shape != (n, len(names)) or labeled.dtype != bool or labeled.shape != (n,):
            raise InputError(path, f"'multi_labels' should be bool ({n}, {len(names)}) with 'labeled' bool ({n},)")
        labels = hot.astype(np.int8)
        labels[~labeled] = -1
        multilabel = True
    else:
        raw = _strings(path, obj, "labels", n)
        unknown = sorted({x for x in raw if x and x not in names})
        if unknown:
            raise InputError(path, f"labels {unknown[:10]} are not in 'class_names'")
        lut = {c: i for i, c in enumerate(names)}
        labels = np.array([lut[x] if x else -1 for x in raw], np.int64)
        multilabel = False
    meta = F.make_meta(path, range(n), {"lot": _strings(path, obj, "lot", n), "wafer": _strings(path, obj, "wafer", n)})
    return WaferMapSet(maps=maps, labels=labels, class_names=names, meta=meta, multilabel=multilabel)
