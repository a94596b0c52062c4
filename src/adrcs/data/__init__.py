"""Wafer-map data: the `WaferMapSet` type and `load`, which auto-detects the file format."""
from adrcs.data.wafer_map_set import MIXEDWM38_CLASSES, WM811K_CLASSES, WaferMapSet
from adrcs.data.loader import load, load_many

__all__ = ["WaferMapSet", "load", "load_many", "WM811K_CLASSES", "MIXEDWM38_CLASSES"]
