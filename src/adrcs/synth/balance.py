"""Class balancing of a training set: `none | oversample | cae | gan` up to a target count per class.

Only ever applied to the training split. Added maps are marked in `meta`: `synthetic` is True,
`synth_method` names how they were made, `source` is `synthetic:<method>`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError
from adrcs.pipeline import Pipeline
from adrcs.synth.base import Synthesizer

BALANCE_METHODS = ("none", "oversample", "cae", "gan")


def auto_target(counts: np.ndarray) -> int:
    """Default target: the second-largest class count (the largest class besides the majority,
    e.g. the biggest defect class when `none` dominates WM-811K)."""
    present = np.sort(counts[counts > 0])[::-1]
    return int(present[1] if len(present) > 1 else (present[0] if len(present) else 0))


def maps_to_add(counts: np.ndarray, target: int) -> np.ndarray:
    """Maps to add per class to bring it up to `target` (classes at/above it, or empty, get none)."""
    return np.where(counts > 0, np.maximum(int(target) - counts, 0), 0)


def oversample(maps: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` copies of randomly chosen `maps` (one class's training maps), each with a random rot90 / flip."""
    out = []
    for i in rng.integers(0, len(maps), n):
        m = np.rot90(maps[i], int(rng.integers(4)))
        out.append(np.ascontiguousarray(m[:, ::-1] if rng.integers(2) else m))
    return out


def synthetic_set(maps: list[np.ndarray] | np.ndarray, class_index: int, class_names: list[str], method: str,
                  extra: dict[str, Any] | None = None) -> WaferMapSet:
    """Wrap generated maps of one class as a WaferMapSet marked synthetic."""
    n = len(maps)
    meta = pd.DataFrame({"source": [f"synthetic:{method}"] * n, "index": np.arange(n), "synthetic": True,
                         "synth_method": method, **(extra or {})})
    return WaferMapSet(maps=[np.asarray(m, np.uint8) for m in maps], labels=np.full(n, class_index, np.int64),
                       class_names=list(class_names), meta=meta, multilabel=False)


def filtered_sample(synth: Synthesizer, class_name: str, n: int, judge: Pipeline, threshold: float = 0.5,
                    seed: int = 0, max_rounds: int = 10) -> tuple[np.ndarray, float]:
    """`n` synthetic maps of a class that a classifier trained on real maps assigns to that class
    with probability >= `threshold` (the ADRCS paper's check, used as a filter).

    Candidates are drawn in rounds of 2n; if too few pass after `max_rounds`, the best-scoring
    of the rejected ones fill the rest. Returns (maps, share of candidates accepted)."""
    if class_name not in judge.class_names:
        raise InputError(None, f"the filter classifier does not know class {class_name!r}")
    k = judge.class_names.index(class_name)
    kept: list[np.ndarray] = []
    rejected: list[tuple[float, np.ndarray]] = []
    drawn = 0
    for r in range(max_rounds):
        cand = synth.sample(class_name, 2 * n, seed=seed + 7919 * r)
        drawn += len(cand)
        p = judge.predict_proba(list(cand))[:, k]
        kept += list(cand[p >= threshold])
        rejected += [(float(q), m) for q, m in zip(p[p < threshold], cand[p < threshold])]
        if len(kept) >= n:
            break
    accepted = len(kept) / max(drawn, 1)
    if len(kept) < n:
        rejected.sort(key=lambda t: -t[0])
        kept += [m for _, m in rejected[:n - len(kept)]]
    return np.stack(kept[:n]), accepted


def balance_training_set(train: WaferMapSet, method: str, target: int = 0, synthesizer: Synthesizer | None = None,
                         seed: int = 0, judge: Pipeline | None = None,
                         threshold: float = 0.5) -> tuple[WaferMapSet, dict[str, Any]]:
    """Return the training set plus added maps, and a summary (target, real and added counts).

    `target` 0 means `auto_target`. `cae`/`gan` need a synthesizer fitted on this training set;
    with `judge` (a classifier trained on the same real training maps) only synthetic maps it
    assigns to their class are kept (see `filtered_sample`).
    """
    if method not in BALANCE_METHODS:
        raise InputError(None, f"balance={method!r} is not one of {list(BALANCE_METHODS)}")
    if train.multilabel and method != "none":
        raise InputError(None, "balance works on single-label data only (use imbalance: sampler for multi-label)")
    real = train.subset(np.arange(len(train)))
    real.meta["synthetic"] = False
    real.meta["synth_method"] = ""
    counts = np.bincount(train.labels, minlength=len(train.class_names))
    target = int(target) or auto_target(counts)
    info: dict[str, Any] = {"method": method, "target": target,
                            "real_counts": {c: int(n) for c, n in zip(train.class_names, counts)},
                            "added": {c: 0 for c in train.class_names}}
    if method == "none":
        return real, info
    if method in ("cae", "gan"):
        if synthesizer is None:
            raise ValueError(f"balance={method} needs a fitted synthesizer")
        if synthesizer.method != method:
            raise InputError(None, f"balance={method} but the synthesizer given is a {synthesizer.method}")
        missing = [c for c, n in zip(train.class_names, counts) if n and c not in synthesizer.class_names]
        if missing:
            raise InputError(None, f"the synthesizer does not know classes {missing}")
    rng = np.random.default_rng(seed)
    parts = [real]
    for c, n_add in enumerate(maps_to_add(counts, target)):
        if n_add == 0:
            continue
        name = train.class_names[c]
        if method == "oversample":
            maps = oversample([train.maps[i] for i in np.flatnonzero(train.labels == c)], int(n_add), rng)
        elif judge is not None:
            maps, accepted = filtered_sample(synthesizer, name, int(n_add), judge, threshold, seed=seed * 1_000_003 + c)
            info.setdefault("filter_accept_rate", {})[name] = round(accepted, 4)
        else:
            maps = synthesizer.sample(name, int(n_add), seed=seed * 1_000_003 + c)
        parts.append(synthetic_set(list(maps), c, train.class_names, method))
        info["added"][name] = int(n_add)
    out = WaferMapSet.concat(parts)
    info["n_real"], info["n_added"] = len(train), len(out) - len(train)
    return out, info
