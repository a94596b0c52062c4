"""Nearest-neighbour resize that only ever copies existing die codes (never invents values)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    # centre-aligned sampling: output cell i takes input cell floor((i + 0.5) * n_in / n_out)
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


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
    out = np.empty((len(maps), size, size), np.uint8)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(maps):
        by_shape.setdefault(m.shape, []).append(i)
    for (h, w), idx in by_shape.items():
        block = np.stack([maps[i] for i in idx])
        out[idx] = block[:, _nearest_index(h, size)[:, None], _nearest_index(w, size)[None, :]]
    return out
