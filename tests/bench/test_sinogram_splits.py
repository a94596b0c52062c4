"""bench/sinogram_splits.py: the sets and the two balancing orders of the sinogram studies (issue 21)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.bench import load_script

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
ss = load_script("bench/sinogram_splits.py", "sinogram_splits_bench")


def _pool(rng: np.random.Generator):
    from adrcs.data.wafer_map_set import WaferMapSet

    shapes = [(26, 26)] * 120 + [(25, 27)] * 60 + [(30, 34)] * 8
    labels = np.r_[np.repeat([0, 1, 2], [80, 25, 15]), np.repeat([0, 2], [40, 20]), np.zeros(8, int)]
    maps = [rng.integers(0, 3, s).astype(np.uint8) for s in shapes]
    meta = pd.DataFrame({"source": "t", "index": np.arange(len(maps))})
    return WaferMapSet(maps, labels.astype(np.int64), ["none", "Loc", "Scratch"], meta)


def test_sets_by_native_size_and_class_filters():
    pool = _pool(np.random.default_rng(0))
    assert ss.size_counts(pool) == {"26x26": 120, "25x27": 60, "30x34": 8}
    assert ss.big_sizes(pool, 50) == ["26x26", "25x27"]
    ds, side = ss.size_set(pool, "25x27")
    assert side == 28 and len(ds) == 60 and ds.class_names == ["none", "Scratch"]  # Loc absent: renumbered
    all_set, side = ss.size_set(pool, "All")
    assert side == 26 and len(all_set) == len(pool)
    eight = ss.without_class(all_set, "none")
    assert "none" not in eight.class_names and len(eight) == 25 + 35
    assert sorted(set(eight.labels)) == [0, 1]


def test_split3_is_stratified_disjoint_and_seeded():
    ds, _ = ss.size_set(_pool(np.random.default_rng(0)), "26x26")
    tr, va, te = ss.split3(ds, ss.PROTOCOLS["60:20:20"], seed=0)
    assert (len(tr), len(va), len(te)) == (72, 24, 24)
    ids = [set(p.meta["index"]) for p in (tr, va, te)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert np.bincount(te.labels).tolist() == [16, 5, 3]
    again = ss.split3(ds, ss.PROTOCOLS["60:20:20"], seed=0)[2]
    assert list(again.meta["index"]) == list(te.meta["index"])


def test_leaky_split_balances_the_whole_set_before_splitting(tmp_path):
    ds, _ = ss.size_set(_pool(np.random.default_rng(0)), "26x26")
    cfg = {"balance": "oversample", "balance_target": 0, "seed": 0}
    tr, va, te = ss.leaky_split(ds, ss.PROTOCOLS["60:20:20"], cfg, tmp_path / "syn", lambda m: None)
    # the paper's order: every part holds synthetic maps, classes balanced to the second-largest count
    for part in (tr, va, te):
        assert part.meta["synthetic"].any()
    assert np.bincount(np.r_[tr.labels, va.labels, te.labels]).tolist() == [80, 25, 25]
    real = ss.real_only(te)
    assert real is not None and not real.meta["synthetic"].any() and len(real) < len(te)
    assert ss.real_only(ss.split3(ds, ss.PROTOCOLS["60:20:20"])[2]) is None  # honest split: nothing synthetic


def test_per_class_f1_from_a_report():
    rep = {"per_class": {"a": {"f1": 0.123456}, "b": {"f1": 1.0}}}
    assert ss.per_class_f1(rep) == {"a": 0.1235, "b": 1.0}
