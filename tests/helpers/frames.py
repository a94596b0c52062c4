"""Frames and arrays laid out as the supported data files: processed WM-811K, raw Kaggle LSWMD.pkl, MixedWM38."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from helpers.wafers import MIXED, make_mixed_wafer, make_wafer, to_255

WM811K = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none"]
MIXED_ABBR = {"Center": "C", "Donut": "D", "Edge-Loc": "EL", "Edge-Ring": "ER", "Loc": "L",
              "Near-full": "NF", "Scratch": "S", "Random": "R"}


def make_wm811k_frame(rng: np.random.Generator, classes: list[str] | None = None, per_class: int = 2,
                      sizes: tuple = (20, (24, 18), 30)) -> pd.DataFrame:
    """Processed WM-811K frame: waferMap (0/128/255, mixed sizes), failureType (category), failureCode (int8)."""
    classes = classes or WM811K
    rows = []
    for i, (c, _) in enumerate(itertools.product(classes, range(per_class))):
        size = sizes[i % len(sizes)]
        rows.append((to_255(make_wafer(c, size, rng)), "None" if c == "none" else c, WM811K.index(c)))
    df = pd.DataFrame(rows, columns=["waferMap", "failureType", "failureCode"])
    cats = ["Loc", "None", "Scratch", "Edge-Ring", "Center", "Edge-Loc", "Random", "Donut", "Near-full"]
    df["failureType"] = pd.Categorical(df["failureType"], categories=cats, ordered=True)
    df["failureCode"] = df["failureCode"].astype(np.int8)
    df.index = 1000 + 7 * np.arange(len(df))
    return df


def write_noisy_splits(folder, per_class: dict[str, int], seeds: dict[str, int] | None = None) -> dict:
    """One pickle per split name (`per_class[name]` maps of Center, Donut, Edge-Ring and none, 16-22 px), with a
    few random failing dies so no two maps are alike; split i uses seed i + 1 unless `seeds` says otherwise.
    Returns {name: path}."""
    from pathlib import Path

    paths = {}
    for i, (name, n) in enumerate(per_class.items()):
        rng = np.random.default_rng((seeds or {}).get(name, i + 1))
        frame = make_wm811k_frame(rng, classes=["Center", "Donut", "Edge-Ring", "none"], per_class=n, sizes=(16, 22))
        for m in frame["waferMap"]:
            m[(m == 128) & (rng.random(m.shape) < 0.05)] = 255
        paths[name] = Path(folder) / f"{name}.pkl.xz"
        frame.to_pickle(paths[name])
    return paths


def _nested(s: str) -> np.ndarray:
    return np.array([[s]], dtype=object)


# The LSWMD rows: (label cell, train/test cell, expected class or None for unlabeled)
LSWMD_ROWS = [
    (_nested("Loc"), _nested("Training"), "Loc"),
    (np.zeros((0, 0)), np.zeros((0, 0)), None),
    ("Center", "Test", "Center"),
    (None, None, None),
    (_nested("none"), _nested("Training"), "none"),
    (float("nan"), float("nan"), None),
    ([], [], None),
    (_nested("Edge-Ring"), _nested("Test"), "Edge-Ring"),
    (_nested("Near-full"), _nested("Training"), "Near-full"),
]
LSWMD_KIND = {"Loc": "loc", "Center": "center", "none": "none", "Edge-Ring": "edge_ring", "Near-full": "near_full"}


def make_lswmd_frame(rng: np.random.Generator, split_column: str = "trianTestLabel") -> pd.DataFrame:
    """Raw Kaggle LSWMD.pkl-style frame; labels as in LSWMD_ROWS; maps 0/1/2 of mixed sizes."""
    rows = []
    for i, (ft, tt, expected) in enumerate(LSWMD_ROWS):
        size = [(15, 17), 22, (30, 26)][i % 3]
        wm = make_wafer(LSWMD_KIND.get(expected, "random"), size, rng)
        rows.append({"waferMap": wm, "dieSize": float(1000 + i), "lotName": f"lot{i // 4 + 1}",
                     "waferIndex": float(i % 25 + 1), split_column: tt, "failureType": ft})
    return pd.DataFrame(rows, columns=["waferMap", "dieSize", "lotName", "waferIndex", split_column, "failureType"])


def make_mixed_arrays(rng: np.random.Generator, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(maps (n, 52, 52) uint8 0/1/2, labels (n, 8) int) with varied label combinations (row 0 defect-free)."""
    labels = np.zeros((n, 8), np.int64)
    for i in range(1, n):
        labels[i, i % 8] = 1
        if i % 3 == 0:
            labels[i, (i + 2) % 8] = 1
    maps = np.stack([make_mixed_wafer([MIXED[j] for j in np.flatnonzero(row)], rng) for row in labels])
    return maps, labels


def make_mixed_frame(rng: np.random.Generator, n: int = 12) -> pd.DataFrame:
    """Processed MixedWM38 frame: waferMap (0/128/255), label lists, failureType, Normal + 8 boolean columns."""
    maps, labels = make_mixed_arrays(rng, n)
    df = pd.DataFrame({
        "waferMap": [to_255(m) for m in maps],
        "label": [list(map(int, row)) for row in labels],
        "failureType": ["-".join(MIXED_ABBR[MIXED[j]] for j in np.flatnonzero(row)) or "Normal" for row in labels],
        "Normal": labels.sum(axis=1) == 0,
    })
    for j, c in enumerate(MIXED):
        df[c] = labels[:, j].astype(bool)
    df.index = 500 + np.arange(n)
    return df
