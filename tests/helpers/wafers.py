"""Drawn wafer maps: die codes 0 (off-wafer), 1 (good), 2 (failing) with one or more defect patterns."""
from __future__ import annotations

import numpy as np
import pandas as pd

MIXED = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Scratch", "Random"]
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
    """Die codes 0/1/2 -> 0/128/255 (the processed-pickle coding)."""
    return np.array([0, 128, 255], np.uint8)[m]
