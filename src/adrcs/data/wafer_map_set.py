"""The in-memory wafer-map dataset every other part of ADRCS consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

# Die codes after loading: every format is converted to these.
OFF_WAFER, GOOD_DIE, FAIL_DIE = 0, 1, 2

# Canonical WM-811K classes in `failureCode` order (0..8).
WM811K_CLASSES = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch", "none"]
# MixedWM38 labels in the order of the public npz `arr_1` columns.
MIXEDWM38_CLASSES = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Scratch", "Random"]


@dataclass
class WaferMapSet:
    """Wafer maps with labels, class names and per-map metadata.

    maps: list of 2-D uint8 arrays holding die codes 0 (off-wafer), 1 (good), 2 (failing);
        sizes may differ from map to map.
    labels: single-label: int64 array (N,), -1 where a map is unlabeled;
        multi-label: int8 array (N, C) of 0/1, a row of -1 where a map is unlabeled.
    class_names: names of the classes (single-label) or of the labels (multi-label).
    meta: one row per map: `source` (file), `index` (row in the file) and format-specific
        columns such as `lotName`, `waferIndex`, `dieSize`; fab files add `lot`, `wafer`, `untested_count`,
        `untested_flag`, `die_count`, `fail_count`, `yield` (see `adrcs.data.fab`).
    bins: per map, the original bin of every die (int32 grid, -1 where none) when the file has bins (fab
        formats), else None; kept through `subset` and `concat`.
    """

    maps: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    meta: pd.DataFrame
    multilabel: bool = False
    notes: dict = field(default_factory=dict)
    bins: list[np.ndarray | None] | None = None

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def labeled_mask(self) -> np.ndarray:
        """Boolean mask of maps that carry a label."""
        if self.multilabel:
            return (self.labels >= 0).all(axis=1) if len(self.labels) else np.zeros(0, bool)
        return self.labels >= 0

    def subset(self, index: Sequence[int] | np.ndarray) -> "WaferMapSet":
        """A new set holding the maps at `index` (ints or a boolean mask)."""
        idx = np.arange(len(self))[np.asarray(index)] if len(self) else np.zeros(0, int)
        return WaferMapSet(
            maps=[self.maps[i] for i in idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            meta=self.meta.iloc[idx].reset_index(drop=True),
            multilabel=self.multilabel,
            notes=dict(self.notes),
            bins=None if self.bins is None else [self.bins[i] for i in idx],
        )

    def labeled(self) -> "WaferMapSet":
        """Only the maps that carry a label."""
        return self.subset(self.labeled_mask)

    def with_classes(self, class_names: Sequence[str]) -> "WaferMapSet":
        """Re-express labels in another class order (e.g. a trained model's).

        Raises ValueError naming the classes this set has that `class_names` lacks.
        """
        class_names = list(class_names)
        if class_names == self.class_names:
            return self
        missing = [c for c in self.class_names if c not in class_names]
        if self.multilabel:
            used = [c for c, col in zip(self.class_names, self.labels.T) if (col > 0).any()]
            missing = [c for c in missing if c in used]
            if missing:
                raise ValueError(f"labels {missing} are unknown to the model (it knows {class_names})")
            new = np.zeros((len(self), len(class_names)), np.int8)
            for j, c in enumerate(self.class_names):
                if c in class_names:
                    new[:, class_names.index(c)] = self.labels[:, j]
            new[~self.labeled_mask] = -1
        else:
            present = set(self.labels[self.labels >= 0].tolist())
            missing = [c for i, c in enumerate(self.class_names) if c in missing and i in present]
            if missing:
                raise ValueError(f"classes {missing} are unknown to the model (it knows {class_names})")
            lut = np.array([class_names.index(c) if c in class_names else -1 for c in self.class_names] + [-1])
            new = lut[self.labels]  # -1 indexes the trailing -1
        out = self.subset(np.arange(len(self)))
        out.labels, out.class_names = new, class_names
        return out

    @staticmethod
    def concat(sets: Sequence["WaferMapSet"]) -> "WaferMapSet":
        """Join sets; class lists are merged (first-seen order) and labels re-mapped."""
        if not sets:
            raise ValueError("nothing to concatenate")
        if len({s.multilabel for s in sets}) > 1:
            raise ValueError("cannot mix single-label and multi-label data")
        names: list[str] = []
        for s in sets:
            names += [c for c in s.class_names if c not in names]
        parts = [s.with_classes(names) if s.class_names != names else s for s in sets]
        return WaferMapSet(
            maps=[m for s in parts for m in s.maps],
            labels=np.concatenate([s.labels for s in parts]),
            class_names=names,
            meta=pd.concat([s.meta for s in parts], ignore_index=True),
            multilabel=sets[0].multilabel,
            bins=(None if all(s.bins is None for s in parts)
                  else [b for s in parts for b in (s.bins if s.bins is not None else [None] * len(s))]),
        )
