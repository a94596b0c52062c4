"""A lot report's input without a model: a wafer table (lot, wafer, predicted, confidence, counts) and its maps."""
from __future__ import annotations

import numpy as np
import pandas as pd

EVIL = "<script>alert(1)</script>"


def lot_wafers() -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Lot A: 20 wafers, 17 none, 2 Center, one Scratch (rare: 5 %), one with confidence 0.4; lot EVIL: 3
    Donut wafers of various confidence; one wafer without a lot."""
    rows = [("A", f"A{i:02d}", "none", 0.95) for i in range(17)]
    rows += [("A", "A17", "Center", 0.9), ("A", "A18", "Center", 0.4), ("A", "A19", "Scratch", 0.99)]
    rows += [(EVIL, f"E{i}", "Donut", c) for i, c in enumerate((0.8, 0.75, 0.65))]
    rows += [("", "loose.pkl:7", "Loc", 0.99)]
    df = pd.DataFrame(rows, columns=["lot", "wafer", "predicted", "confidence"])
    rng = np.random.default_rng(0)
    maps = []
    for i in range(len(df)):
        m = np.ones((12 + i % 3, 12), np.uint8)
        m[0, :] = 0
        m[rng.random(m.shape) < 0.1 * (i % 4)] = 2
        maps.append(m)
    df["map"] = np.arange(len(df))
    df["die_count"] = [int((m > 0).sum()) for m in maps]
    df["fail_count"] = [int((m == 2).sum()) for m in maps]
    df["yield"] = 1 - df["fail_count"] / df["die_count"]
    return df, maps
