"""Resizing die-code maps to the network's input size without inventing values.

``nearest``: centre-aligned nearest-neighbour index selection. ``failmax``: when a side shrinks, each output cell
takes the largest code of the dies it covers (fail > pass > off-wafer), so a failing die anywhere in the cell
marks it and a one-die scratch on a dense product survives; when a side grows it is the same as ``nearest``."""
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


RESIZE_METHODS = ("nearest", "failmax")


@lru_cache(maxsize=4096)
def _block_starts(n_in: int, n_out: int) -> np.ndarray:
    # output cell i covers input cells [floor(i * n_in / n_out), floor((i + 1) * n_in / n_out)), n_in > n_out
    starts = (np.arange(n_out) * n_in // n_out).astype(np.int64)
    starts.flags.writeable = False
    return starts


def _failmax_axis(block: np.ndarray, axis: int, size: int) -> np.ndarray:
    n = block.shape[axis]
    if n > size:
        return np.maximum.reduceat(block, _block_starts(n, size), axis=axis)
    if n == size:
        return block
    return np.take(block, _nearest_index(n, size), axis=axis)


def resize_failmax(block: np.ndarray, size: int) -> np.ndarray:
    """Maps (..., H, W) of one shape -> (..., size, size): a shrinking side keeps the largest code per cell."""
    return _failmax_axis(_failmax_axis(np.asarray(block), -2, size), -1, size)


def resize_stack(maps: Sequence[np.ndarray], size: int, method: str = "nearest") -> np.ndarray:
    """Resize many maps of any sizes into one uint8 array (N, size, size) by `method` (nearest | failmax).

    Maps sharing a shape are resized together with one fancy-indexing call, so a file with
    tens of thousands of maps in a few hundred distinct shapes takes well under a second.
    """
    if method == "failmax":
        out = np.empty((len(maps), size, size), np.uint8)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, m in enumerate(maps):
            by_shape.setdefault(np.shape(m), []).append(i)
        for idx in by_shape.values():
            out[idx] = resize_failmax(np.stack([np.asarray(maps[i], np.uint8) for i in idx]), size)
        return out
    if method != "nearest":
        raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {method!r}")
    if len(maps) == 1:  # one map (a service request): no grouping, no copy into a preallocated stack
        m = np.asarray(maps[0])
        rows, cols = _grid_index(*m.shape, size)
        return np.asarray(m[rows, cols], np.uint8)[None]
    out = np.empty((len(maps), size, size), np.uint8)
    by_shape = {}
    for i, m in enumerate(maps):
        by_shape.setdefault(m.shape, []).append(i)
    for (h, w), idx in by_shape.items():
        block = np.stack([maps[i] for i in idx])
        rows, cols = _grid_index(h, w, size)
        out[idx] = block[:, rows, cols]
    return out
