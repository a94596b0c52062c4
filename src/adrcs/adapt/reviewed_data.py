"""Reviewed wafer-map inspections as training and audit sets.

Each reviewed inspection belongs, for ever, to either the audit set or the retraining pool: the
choice depends only on its id (a hash), so a challenger never trains on audit data, the audit
set of one retraining round stays in the next one, and nothing depends on review order.
The label is the effective (latest) review label.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from adrcs.data.wafer_map_set import WaferMapSet

DEFAULT_AUDIT_FRACTION = 0.3


def is_audit(inspection_id: int, fraction: float = DEFAULT_AUDIT_FRACTION) -> bool:
    """True when the inspection belongs to the audit set (a fixed function of its id)."""
    h = int.from_bytes(hashlib.sha256(f"adrcs-audit:{int(inspection_id)}".encode()).digest()[:8], "big")
    return h / 2 ** 64 < float(fraction)


def new_classes(store: Any, class_names: Sequence[str], multilabel: bool = False) -> list[str]:
    """Classes an admin registered (kind wafer) that reviewed inspections use and `class_names` lacks,
    in registration order: the new patterns a challenger can learn from reviews."""
    registered = [c.name for c in store.list_classes("wafer")] if hasattr(store, "list_classes") else []
    known, used = set(class_names), set()
    for rec in store.reviewed_inspections():
        if rec.kind != "wafer_map" or rec.effective_label is None:
            continue
        label = rec.effective_label
        used.update(json.loads(label) if multilabel and label.startswith("[") else [label])
    return [c for c in registered if c in used and c not in known]


def reviewed_sets(store: Any, class_names: Sequence[str], multilabel: bool = False,
                  audit_fraction: float = DEFAULT_AUDIT_FRACTION) -> tuple[WaferMapSet, WaferMapSet]:
    """(retraining pool, audit set) from every reviewed wafer-map inspection in `store`.

    Labels outside `class_names` are skipped (pass the champion's classes plus `new_classes` to keep
    reviews of newly registered patterns). Returns sets labelled in `class_names` order.
    """
    from adrcs.data.map_blob import decode_map

    names = list(class_names)
    rows: dict[bool, list[tuple[np.ndarray, Any, dict]]] = {True: [], False: []}
    for rec in store.reviewed_inspections():
        if rec.kind != "wafer_map" or rec.effective_label is None:
            continue
        if multilabel:
            labels = json.loads(rec.effective_label) if rec.effective_label.startswith("[") else [rec.effective_label]
            if any(c not in names for c in labels):
                continue
            y: Any = np.array([int(c in labels) for c in names], np.int8)
        else:
            if rec.effective_label not in names:
                continue
            y = names.index(rec.effective_label)
        blob = store.get_blob(rec.input_sha256)
        if blob is None:
            continue
        rows[is_audit(rec.id, audit_fraction)].append(
            (decode_map(blob[0]), y, {"source": "review", "index": rec.id, "lot": rec.lot, "wafer": rec.wafer}))
    return _as_set(rows[False], names, multilabel), _as_set(rows[True], names, multilabel)


def _as_set(rows: list[tuple[np.ndarray, Any, dict]], names: list[str], multilabel: bool) -> WaferMapSet:
    if multilabel:
        labels = np.stack([r[1] for r in rows]) if rows else np.zeros((0, len(names)), np.int8)
    else:
        labels = np.array([r[1] for r in rows], np.int64)
    meta = pd.DataFrame([r[2] for r in rows], columns=["source", "index", "lot", "wafer"])
    return WaferMapSet(maps=[r[0] for r in rows], labels=labels, class_names=list(names), meta=meta,
                       multilabel=multilabel, notes={"source": "reviewed inspections"})
