"""Label names: normalising the spellings found in wafer-map files to canonical class names.

Class names come from the data, so unknown names are never refused: they are kept (stripped).
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

import numpy as np

from adrcs.data.wafer_map_set import MIXEDWM38_CLASSES, WM811K_CLASSES

# Lower-cased name with spaces, hyphens and underscores removed -> canonical name.
_CANONICAL = {
    "center": "Center",
    "centre": "Center",
    "donut": "Donut",
    "edgeloc": "Edge-Loc",
    "edgering": "Edge-Ring",
    "loc": "Loc",
    "nearfull": "Near-full",
    "random": "Random",
    "scratch": "Scratch",
    "none": "none",
    "normal": "none",  # WM-811K has no "Normal" class; a defect-free map is "none"
}

# Abbreviations used in MixedWM38 type strings such as "C-EL-S".
MIXEDWM38_ABBREVIATIONS = {
    "C": "Center",
    "D": "Donut",
    "EL": "Edge-Loc",
    "ER": "Edge-Ring",
    "L": "Loc",
    "NF": "Near-full",
    "S": "Scratch",
    "R": "Random",
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_name(s: Any) -> str:
    """The canonical spelling of a class name.

    "near-full", "Nearfull", "near_full", "NEARFULL" -> "Near-full"; "None", "NONE", "normal" -> "none";
    "edge-loc", "Edge_Loc", "EdgeLoc" -> "Edge-Loc"; "edge-ring" -> "Edge-Ring"; "center", "donut",
    "loc", "random", "scratch" -> capitalised. Unknown names are returned stripped.
    """
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    text = str(s).strip()
    key = _SEPARATORS.sub("", text).lower()
    return _CANONICAL.get(key, text)


def clean_label(value: Any) -> str | None:
    """The label held by one table cell, as a stripped string, or None when the cell holds no label.

    Handles the shapes found in WM-811K files: plain strings, bytes, numpy arrays nested any depth
    (``array([['Loc']], dtype=object)``), empty arrays / lists (unlabeled), None and NaN.
    """
    while True:
        if value is None:
            return None
        if isinstance(value, (str, bytes)):
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            value = value.strip()
            return value or None
        if isinstance(value, np.ndarray):
            if value.size == 0:
                return None
            value = value.flat[0]
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                return None
            value = value[0]
            continue
        if isinstance(value, (float, np.floating)):
            if math.isnan(value):
                return None
            return str(int(value)) if float(value).is_integer() else str(value)
        try:  # pandas.NA, NaT and friends
            import pandas as pd

            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        return str(value).strip() or None


def wm811k_class_names(seen: Iterable[str]) -> list[str]:
    """Class list for single-label data whose (normalised) names are `seen`.

    All names within WM811K_CLASSES: exactly WM811K_CLASSES (all nine, in failureCode order).
    Otherwise the WM811K_CLASSES that were seen, followed by the unknown names sorted.
    """
    seen = set(seen)
    unknown = sorted(seen - set(WM811K_CLASSES))
    if not unknown:
        return list(WM811K_CLASSES)
    return [c for c in WM811K_CLASSES if c in seen] + unknown


def parse_mixed_type(s: str) -> list[str] | None:
    """MixedWM38 labels in a type string like "C-EL-S" (or "C+EL+S"); [] for "Normal"/"none".

    Returns None when a part is not a known abbreviation or label name.
    """
    text = str(s).strip()
    if normalize_name(text) == "none":
        return []
    out = []
    sep = r"[+,/]+" if re.search(r"[+,/]", text) else r"[\-\s]+"
    for part in re.split(sep, text):
        part = part.strip()
        if not part:
            continue
        name = MIXEDWM38_ABBREVIATIONS.get(part.upper()) or normalize_name(part)
        if name not in MIXEDWM38_CLASSES:
            return None
        out.append(name)
    return out
