"""A wafer map as stored bytes: the ``.npy`` encoding of its uint8 die codes (what ``np.save`` writes).

The service stores each inspected map this way; `adapt` reads reviewed maps back with `decode_map`.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np


def encode_map(m: np.ndarray) -> bytes:
    """A die-code map as .npy bytes (the stored input blob): exactly what ``np.save`` writes."""
    a = np.ascontiguousarray(m, dtype=np.uint8)
    return _npy_header(a.shape) + a.tobytes()


@lru_cache(maxsize=4096)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    # np.save's header for a C-order uint8 array of this shape (formatting it per map is most of np.save's time)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def decode_map(blob: bytes) -> np.ndarray:
    """Inverse of `encode_map`."""
    return np.load(io.BytesIO(blob), allow_pickle=False)
