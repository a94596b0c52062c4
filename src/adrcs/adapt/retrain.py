"""`adapt`: one round of adaptive retraining (what `adrcs adapt` and ``POST /v1/models/retrain`` run).

1. The champion's run folder gives its config and original training / validation files.
2. Reviewed inspections are split by id into a retraining pool and the fixed audit set.
3. The challenger trains on original training data + the pool, with the champion's config
   (balancing of rare classes by the synthesis module included), selected on the original val.
4. Champion and challenger are scored on the audit set (`champion_challenger.compare`).
5. The challenger is registered; it is promoted only when not worse, else a "reject" event
   records why. ``OUT/adapt_report.json`` holds the decision and both scores.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from adrcs.adapt.champion_challenger import compare
from adrcs.adapt.reviewed_data import DEFAULT_AUDIT_FRACTION, new_classes, reviewed_sets
from adrcs.errors import InputError


def adapt(store: Any, champion_dir: str | Path, out_dir: str | Path, *, actor: str = "adapt",
          original: Sequence[str | Path] | None = None, val: Sequence[str | Path] | None = None,
          overrides: dict[str, Any] | None = None, audit_fraction: float = DEFAULT_AUDIT_FRACTION,
          recall_margin: float = 0.05, f1_tolerance: float = 0.0, min_support: int = 5, min_reviewed: int = 1,
          say: Callable[[str], None] = print, trust_pickle: bool = False, limits: Any = None, fab: Any = None,
          on_error: str = "stop", model_store: Any = None) -> dict[str, Any]:
    """Train a challenger from original + reviewed data and promote it if it is not worse (see module docs).

    original / val: training and validation files (default: those in the champion's config.yaml).
    overrides: config keys for the challenger (e.g. ``{"epochs": 10}``). Returns the report dict.
    trust_pickle, limits, fab, on_error: how the data files are read (see `adrcs.data.load_many`).
    model_store: a `serve.model_store.ModelStore` the challenger is registered in (copied there unless `out_dir`
    is inside it), so that every replica of the service can load it.
    """
    from adrcs.api import train_sets
    from adrcs.config import DEFAULTS, load_config, read_yaml_mapping
    from adrcs.data import load_many
    from adrcs.data.wafer_map_set import WaferMapSet
    from adrcs.pipeline import Pipeline
    from adrcs.serve.store.run_versions import register_run, version_name

    champion_dir, out = Path(champion_dir), Path(out_dir)
    if not (champion_dir / "config.yaml").is_file():
        raise InputError(champion_dir, "no config.yaml: adapt needs the champion's run folder")
    champ = Pipeline.load(champion_dir)
    raw = read_yaml_mapping(champion_dir / "config.yaml")  # the run's resolved config + its data paths
    one_process = {"devices": 1, "num_nodes": 1, "strategy": "auto"}  # a DDP launch would restart the caller
    cfg = load_config(None, {**{k: v for k, v in raw.items() if k in DEFAULTS}, **one_process, **(overrides or {})})
    train_files = list(original or raw.get("train") or [])
    val_files = list(val or raw.get("val") or [])
    added = new_classes(store, champ.class_names, champ.multilabel)
    names = list(champ.class_names) + added  # new classes go last: the champion's indices stay valid
    pool, audit = reviewed_sets(store, names, champ.multilabel, audit_fraction)
    say(f"reviewed inspections: {len(pool)} for retraining, {len(audit)} in the audit set"
        + (f"; new classes learned from reviews: {', '.join(added)}" if added else ""))
    if len(pool) + len(audit) < min_reviewed:
        raise InputError(None, f"only {len(pool) + len(audit)} reviewed wafer-map inspections; need {min_reviewed}")
    parts = [pool] if len(pool) else []
    if train_files:
        parts.insert(0, load_many(train_files, trust_pickle=trust_pickle, limits=limits, fab=fab,
                                  on_error=on_error).labeled()
                     .with_classes(names))
    if not parts:
        raise InputError(None, "nothing to train on: no original training files and no reviewed inspections")
    train = parts[0] if len(parts) == 1 else WaferMapSet.concat(parts).with_classes(names)
    if val_files:
        val_set = (load_many(val_files, trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error).labeled()
                   .with_classes(names))
    else:
        from adrcs.api import split_holdout

        train, val_set = split_holdout(train, float(cfg.get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    cfg = dict(cfg, train=[str(p) for p in train_files], val=[str(p) for p in val_files])
    say(f"training the challenger on {len(train)} maps ({len(pool)} reviewed), validating on {len(val_set)}")
    train_sets(cfg, train, val_set, out, say=say)

    challenger = Pipeline.load(out)
    y = audit.labels
    if champ.multilabel:  # compare per label as single decisions: flatten (map, label) pairs
        y_flat = y.reshape(-1)
        a = (_padded(champ.predict_proba(audit), len(names)) >= 0.5).astype(np.int64).reshape(-1) \
            if len(audit) else y_flat
        b = (challenger.predict_proba(audit) >= 0.5).astype(np.int64).reshape(-1) if len(audit) else y_flat
        decision = compare(y_flat, a, b, ["absent", "present"], recall_margin, f1_tolerance, min_support)
    else:
        a = champ.predict_proba(audit).argmax(1) if len(audit) else np.zeros(0, np.int64)
        b = challenger.predict_proba(audit).argmax(1) if len(audit) else np.zeros(0, np.int64)
        decision = compare(y, a, b, names, recall_margin, f1_tolerance, min_support)

    champ_version = version_name(champion_dir, "wafer")
    metrics = {"audit": decision.challenger, "champion_audit": decision.champion, "n_audit": decision.n_audit}
    version = register_run(store, out, "wafer", actor=actor, parent=champ_version, metrics=metrics,
                           promote_if_first=False, model_store=model_store)
    if decision.promote:
        current = store.champion("wafer")
        if current is None or current.version != version:
            store.promote(version, actor=actor)
        say(f"challenger {version} promoted: {decision.reasons[0]}")
    else:
        store.log_model_event(version, "reject", actor, {"reasons": decision.reasons, "champion": champ_version})
        say(f"challenger {version} not promoted: {'; '.join(decision.reasons)}")
    report = {"challenger": version, "champion": champ_version, "promoted": decision.promote,
              "decision": decision.to_dict(), "n_pool": len(pool), "n_audit": len(audit), "n_train": len(train),
              "new_classes": added,
              "run_dir": str(out)}
    (out / "adapt_report.json").write_text(json.dumps(report, indent=2))
    return report


def _padded(probs: np.ndarray, k: int) -> np.ndarray:
    """The champion's (N, K0) probabilities as (N, k): classes it does not know get probability 0."""
    return probs if probs.shape[1] == k else np.pad(probs, ((0, 0), (0, k - probs.shape[1])))
