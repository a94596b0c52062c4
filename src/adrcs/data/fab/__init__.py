"""Fab wafer-map files (STDF, KLARF, SINF, SEMI E142 / G85): options, the per-wafer record the readers
give, and the die grid every reader's wafers become.

A fab reader is a module in ``adrcs.data.formats`` with ``NAME``, ``FAB = True``,
``sniff_bytes(head) -> bool`` (on the first decompressed bytes) and
``read_stream(stream, name, options, limits) -> list[FabWafer]``. The loader turns the wafers into a
`WaferMapSet` with `fab.wafer_grid.wafer_set`.
"""
from __future__ import annotations

from adrcs.data.fab.options import DEFAULT_FAB_OPTIONS, FabOptions
from adrcs.data.fab.wafer_grid import UNTESTED_FLAG_SHARE, FabWafer, normalize_wafer_id, wafer_set

__all__ = ["FabOptions", "DEFAULT_FAB_OPTIONS", "FabWafer", "wafer_set", "normalize_wafer_id",
           "UNTESTED_FLAG_SHARE"]
