"""Sets and split protocols of the sinogram studies (bench/sinogram.py): per native map size, the
pooled "All" set, train:val:test ratios, and the two balancing orders compared in issue 21.

  after   balancing (CAE synthesizer) fitted on the training part only, after the split: honest
  before  the paper's order: the CAE is fitted on every map of the set and the whole set is
          balanced, then split; synthetic near-copies of val/test maps land in training, and the
          val/test parts hold synthetic maps too. Test metrics are given on the whole test part
          (as the paper measures) and on its real maps only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from adrcs.data.wafer_map_set import WaferMapSet

PROTOCOLS = {"60:20:20": (0.60, 0.20, 0.20), "36:15:49": (0.36, 0.15, 0.49), "23:15:62": (0.23, 0.15, 0.62)}
ORDERS = ("after", "before")
MIN_PER_CLASS = 10  # classes with fewer maps in a set are left out of that set
MIN_SET = 1500      # resolution study: native sizes with at least this many labelled maps


def with_present_classes(ds: WaferMapSet, min_count: int = MIN_PER_CLASS) -> WaferMapSet:
    """Keep classes with >= min_count maps, renumbered in their original order."""
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    keep = [i for i, c in enumerate(counts) if c >= min_count]
    sub = ds.subset(np.isin(ds.labels, keep))
    remap = {old: new for new, old in enumerate(keep)}
    return WaferMapSet(sub.maps, np.array([remap[v] for v in sub.labels]), [ds.class_names[i] for i in keep],
                       sub.meta.reset_index(drop=True))


def without_class(ds: WaferMapSet, name: str) -> WaferMapSet:
    """The set without one class (the 8-class variant drops `none`)."""
    sub = ds.subset(np.array([ds.class_names[v] != name for v in ds.labels]))
    return with_present_classes(WaferMapSet(sub.maps, sub.labels, ds.class_names, sub.meta), 1)


def size_counts(pool: WaferMapSet) -> dict[str, int]:
    """Labelled maps per native size, largest first."""
    sizes, counts = np.unique([f"{m.shape[0]}x{m.shape[1]}" for m in pool.maps], return_counts=True)
    order = np.argsort(-counts)
    return {str(sizes[i]): int(counts[i]) for i in order}


def big_sizes(pool: WaferMapSet, min_maps: int = MIN_SET) -> list[str]:
    """Native sizes with at least `min_maps` labelled maps."""
    return [s for s, n in size_counts(pool).items() if n >= min_maps]


def size_set(pool: WaferMapSet, name: str) -> tuple[WaferMapSet, int]:
    """Maps of one native size (or All) and the even square input size they are resized to."""
    if name == "All":
        return with_present_classes(pool), 26
    m, n = (int(v) for v in name.split("x"))
    sub = pool.subset(np.array([mp.shape == (m, n) for mp in pool.maps]))
    side = max(m, n) + max(m, n) % 2
    return with_present_classes(sub), side


def split3(ds: WaferMapSet, ratios: tuple[float, float, float], seed: int = 0):
    """Stratified train/val/test parts (fixed seed)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    tr, rest = train_test_split(idx, train_size=ratios[0], random_state=seed, stratify=ds.labels)
    va, te = train_test_split(rest, train_size=ratios[1] / (ratios[1] + ratios[2]), random_state=seed,
                              stratify=ds.labels[rest])
    return ds.subset(tr), ds.subset(va), ds.subset(te)


def ensure_synthesizer(path: Path, cfg: dict[str, Any], maps: WaferMapSet, log: Callable[[str], None]) -> Path:
    """Fit the balancing synthesizer on `maps` into `path` unless it is already there (the cache of every study)."""
    from adrcs.synth import create_synthesizer

    if not (path / "synthesizer.pt").is_file():
        log(f"fitting the {cfg['balance']} synthesizer on {len(maps)} maps -> {path.name}")
        syn = create_synthesizer(cfg["balance"], seed=int(cfg["seed"]), device=cfg["device"], **cfg["synth_args"])
        syn.fit(maps, say=lambda m: None)
        syn.save(path)
    return path


def fitted_synthesizer(path: Path, cfg: dict[str, Any], maps: WaferMapSet, log: Callable[[str], None]):
    """The balancing synthesizer fitted on `maps`, cached in `path` (refitted only when missing)."""
    from adrcs.synth import load_synthesizer

    return load_synthesizer(ensure_synthesizer(path, cfg, maps, log), device=cfg["device"])


def leaky_split(ds: WaferMapSet, ratios: tuple[float, float, float], cfg: dict[str, Any], synth_dir: Path,
                log: Callable[[str], None], seed: int = 0):
    """The paper's order: fit the synthesizer on the whole set, balance it, then split (train, val, test)."""
    from adrcs.synth.balance import balance_training_set

    syn = fitted_synthesizer(synth_dir, cfg, ds, log) if cfg["balance"] in ("cae", "gan") else None
    balanced, info = balance_training_set(ds, cfg["balance"], int(cfg["balance_target"]), syn, seed)
    log(f"balanced the whole set before splitting: {len(ds)} real + {info['n_added']} synthetic maps")
    return split3(balanced, ratios, seed)


def real_only(ds: WaferMapSet) -> WaferMapSet | None:
    """The real maps of a part that holds synthetic ones (None when it holds none)."""
    if "synthetic" not in ds.meta or not ds.meta["synthetic"].to_numpy(bool).any():
        return None
    return ds.subset(~ds.meta["synthetic"].to_numpy(bool))


def per_class_f1(rep: dict[str, Any]) -> dict[str, float]:
    """{class: F1} from a classification report."""
    return {c: round(float(v["f1"]), 4) for c, v in rep["per_class"].items()}
