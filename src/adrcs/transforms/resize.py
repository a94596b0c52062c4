"""Nearest-neighbour resize that only ever copies existing die codes (never invents values)."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


@lru_cache(maxsize=4096)
def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    # centre-aligned sampling: output cell i takes input cell floor((i + 0.5) * n_in / n_out)
    idx = np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)
    idx.flags.writeable = False  # cached and shared
    return idx


@lru_cache(maxsize=4096)
def _grid_index(h: int, w: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    # row indices as a column, column indices as a row: `m[rows, cols]` is the resized map
    return _nearest_index(h, size)[:, None], _nearest_index(w, size)[None, :]


def resize_nearest(wafer: np.ndarray, size: int) -> np.ndarray:
    """Resize one 2-D map to `size` x `size` by nearest-neighbour index selection."""
    h, w = wafer.shape
    if h == size and w == size:
        return wafer
    return wafer[np.ix_(_nearest_index(h, size), _nearest_index(w, size))]


def resize_stack(maps: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Resize many maps of any sizes into one uint8 array (N, size, size).

    Maps sharing a shape are resized together with one fancy-indexing call, so a file with
    tens of thousands of maps in a few hundred distinct shapes takes well under a second.
    """
    if len(maps) == 1:  # one map (a service request): no grouping, no copy into a preallocated stack
        m = np.asarray(maps[0])
        rows, cols = _grid_index(*m.shape, size)
        return np.asarray(m[rows, cols], np.uint8)[None]
    out = np.empty((len(maps), size, size), np.uint8)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(maps):
        by_shape.setdefault(m.shape, []).append(i)
    for (h, w), idx in by_shape.items():
        block = np.stack([maps[i] for i in idx])
        rows, cols = _grid_index(h, w, size)
        out[idx] = block[:, rows, cols]
    return out
