"""Shared test helpers: tiny synthetic wafer maps and data files in every supported format.

Helpers (importable with ``from conftest import make_wafer, ...``, or via the fixtures of the same
purpose):
  make_wafer(kind, size, rng)      one 2-D uint8 map with die codes 0/1/2 and a drawn defect pattern
  to_255(m)                        0/1/2 -> 0/128/255 (the processed-pickle coding)
  make_wm811k_frame(rng, ...)      processed WM-811K DataFrame (waferMap 0/128/255, failureType, failureCode)
  make_lswmd_frame(rng)            raw Kaggle LSWMD.pkl-style DataFrame (nested-array labels, unlabeled rows)
  make_mixed_arrays(rng, ...)      (maps (N,52,52) 0/1/2, labels (N,8)) as in Wafer_Map_Datasets.npz
  make_mixed_frame(rng, ...)       processed MixedWM38 DataFrame (label lists, boolean label columns)
  make_wafer_set(n_per_class, ...) a WaferMapSet of drawn patterns (4 classes, 18-25 px maps by default)
Fixtures writing files into tmp_path: wm811k_pickle, lswmd_pickle, mixed_npz, mixed_pickle.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

WM811K = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none"]
MIXED = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Scratch", "Random"]
MIXED_ABBR = {"Center": "C", "Donut": "D", "Edge-Loc": "EL", "Edge-Ring": "ER", "Loc": "L",
              "Near-full": "NF", "Scratch": "S", "Random": "R"}

PATTERNS = ["none", "center", "donut", "edge_ring", "edge_loc", "loc", "scratch", "random", "near_full"]


def _kind_key(kind: str) -> str:
    return kind.strip().lower().replace("-", "_").replace(" ", "_").replace("nearfull", "near_full")


def pattern_mask(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of failing dies for one defect pattern (before clipping to the wafer disc)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r = np.hypot((yy - cy) / (h / 2), (xx - cx) / (w / 2))  # 0 at centre, 1 at the wafer edge
    ang = np.arctan2(yy - cy, xx - cx)
    k = _kind_key(kind)
    if k == "none":
        return rng.random(shape) < 0.01
    if k == "center":
        return r < 0.3
    if k == "donut":
        return (r > 0.35) & (r < 0.6)
    if k == "edge_ring":
        return r > 0.8
    if k == "edge_loc":
        a0 = rng.uniform(-np.pi, np.pi)
        d = np.angle(np.exp(1j * (ang - a0)))
        return (r > 0.7) & (np.abs(d) < 0.6)
    if k == "loc":
        py, px = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        return np.hypot(yy - py, xx - px) < max(2.0, 0.12 * min(h, w))
    if k == "scratch":
        a = rng.uniform(0, np.pi)
        dist = np.abs((yy - cy) * np.cos(a) - (xx - cx) * np.sin(a))
        along = (yy - cy) * np.sin(a) + (xx - cx) * np.cos(a)
        return (dist < 0.8) & (np.abs(along) < 0.35 * min(h, w))
    if k == "random":
        return rng.random(shape) < 0.3
    if k == "near_full":
        return rng.random(shape) < 0.9
    raise ValueError(f"unknown pattern {kind!r}; known: {PATTERNS}")


def make_wafer(kind: str, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (size x size) or (h x w) uint8 wafer map: 0 off-wafer, 1 good die, 2 failing die.

    `kind` is one of PATTERNS or a WM-811K class name ("Edge-Ring", "Near-full", "none", ...).
    """
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[0:h, 0:w]
    disc = np.hypot((yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)) <= 1.0
    m = np.where(disc, 1, 0).astype(np.uint8)
    m[pattern_mask(kind, (h, w), rng) & disc] = 2
    return m


def make_mixed_wafer(labels: list[str], rng: np.random.Generator, size: int = 52) -> np.ndarray:
    """A map with several MixedWM38 patterns overlaid (no labels: defect-free)."""
    m = make_wafer("none", size, rng)
    disc = m > 0
    for name in labels:
        m[pattern_mask(name, (size, size), rng) & disc] = 2
    return m


def make_wafer_set(n_per_class: int = 8, seed: int = 0,
                   kinds: tuple[str, ...] = ("center", "donut", "edge_ring", "scratch")):
    """A labeled WaferMapSet: `n_per_class` maps of each pattern kind, sides drawn in [18, 26)."""
    from adrcs.data.wafer_map_set import WaferMapSet

    rng = np.random.default_rng(seed)
    maps, labels = [], []
    for c, k in enumerate(kinds):
        for _ in range(n_per_class):
            maps.append(make_wafer(k, int(rng.integers(18, 26)), rng))
            labels.append(c)
    meta = pd.DataFrame({"source": "synthetic", "index": np.arange(len(maps))})
    return WaferMapSet(maps, np.array(labels), list(kinds), meta)


def to_255(m: np.ndarray) -> np.ndarray:
    """Die codes 0/1/2 -> 0/128/255."""
    return np.array([0, 128, 255], np.uint8)[m]


def make_wm811k_frame(rng: np.random.Generator, classes: list[str] | None = None, per_class: int = 2,
                      sizes: tuple = (20, (24, 18), 30)) -> pd.DataFrame:
    """Processed WM-811K frame: waferMap (0/128/255, mixed sizes), failureType (category), failureCode (int8)."""
    classes = classes or WM811K
    rows = []
    for i, (c, j) in enumerate(itertools.product(classes, range(per_class))):
        size = sizes[i % len(sizes)]
        rows.append((to_255(make_wafer(c, size, rng)), "None" if c == "none" else c, WM811K.index(c)))
    df = pd.DataFrame(rows, columns=["waferMap", "failureType", "failureCode"])
    cats = ["Loc", "None", "Scratch", "Edge-Ring", "Center", "Edge-Loc", "Random", "Donut", "Near-full"]
    df["failureType"] = pd.Categorical(df["failureType"], categories=cats, ordered=True)
    df["failureCode"] = df["failureCode"].astype(np.int8)
    df.index = 1000 + 7 * np.arange(len(df))
    return df


# The LSWMD fixture rows: (label cell, train/test cell, expected class or None for unlabeled)
def _nested(s: str) -> np.ndarray:
    return np.array([[s]], dtype=object)


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
    df = pd.DataFrame(rows, columns=["waferMap", "dieSize", "lotName", "waferIndex", split_column, "failureType"])
    return df


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


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def wafer_factory():
    """`make_wafer` as a fixture."""
    return make_wafer


@pytest.fixture
def wm811k_pickle(tmp_path: Path) -> Path:
    """Processed WM-811K pickle (xz) with 2 maps of each of the 9 classes (make_wm811k_frame, seed 1)."""
    path = tmp_path / "wm811k.pkl.xz"
    make_wm811k_frame(np.random.default_rng(1)).to_pickle(path)
    return path


@pytest.fixture
def lswmd_pickle(tmp_path: Path) -> Path:
    """Raw LSWMD.pkl-style pickle (make_lswmd_frame, seed 2): 9 maps, 4 of them unlabeled."""
    path = tmp_path / "LSWMD.pkl"
    make_lswmd_frame(np.random.default_rng(2)).to_pickle(path)
    return path


@pytest.fixture
def mixed_npz(tmp_path: Path) -> Path:
    """MixedWM38 Wafer_Map_Datasets.npz-style file (make_mixed_arrays, seed 3): arr_0 maps, arr_1 labels."""
    path = tmp_path / "Wafer_Map_Datasets.npz"
    maps, labels = make_mixed_arrays(np.random.default_rng(3))
    np.savez_compressed(path, arr_0=maps, arr_1=labels)
    return path


@pytest.fixture
def mixed_pickle(tmp_path: Path) -> Path:
    """Processed MixedWM38 pickle (xz) (make_mixed_frame, seed 4)."""
    path = tmp_path / "mixedwm38.pkl.xz"
    make_mixed_frame(np.random.default_rng(4)).to_pickle(path)
    return path


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run `adrcs ARGV` in-process: (exit code, stdout, stderr)."""
    from adrcs.cli import main

    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread is as fast, and immune to a busy machine (use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
