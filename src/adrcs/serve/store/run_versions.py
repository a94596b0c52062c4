"""Run folders as registry entries: a version name from the checkpoint's hash, and registration.

Used by the service's `ModelHost` and by `adapt` (which needs the store, not the HTTP layer). Registration is
safe when several replicas register the same run folder at once (the version is the primary key: the loser of
the race finds it registered); with a model store (`serve.model_store`) the registry keeps a path relative to it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_KEPT_METRICS = ("accuracy", "macro_f1", "map_50", "map_50_95", "per_class", "class_names", "per_class_ap")


def version_name(model_dir: str | Path, kind: str, part_type: str | None = None) -> str:
    """``<kind>-<sha256 prefix of model.ckpt>``, plus ``@<part>`` for a product's model (`serve.products`)."""
    from adrcs.serve.products import version_suffix

    p = Path(model_dir)
    ck = p / "model.ckpt" if p.is_dir() else p
    h = hashlib.sha256()
    with open(ck, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{kind}-{h.hexdigest()[:12]}{version_suffix(part_type)}"


def register_run(store: Any, model_dir: str | Path, kind: str, *, actor: str = "system", parent: str | None = None,
                 metrics: dict[str, Any] | None = None, promote_if_first: bool = True,
                 model_store: Any = None, part_type: str | None = None) -> str:
    """Add a run folder of `kind` to the registry (idempotent); with `promote_if_first`, the first model of
    its kind becomes champion. `metrics` default: the validation metrics of the run's metrics.json.
    `model_store` (a `ModelStore` with a root): the folder is copied into it and registered by its relative path;
    a version registered earlier with a host-local path is moved there. `part_type`: the product it serves (its
    own champion: the first one registered for that product); None: a default model."""
    model_dir = Path(model_dir).resolve()
    version = version_name(model_dir, kind, part_type)
    path = model_store.registry_path(model_dir, version) if model_store else str(model_dir)
    have = store.get_model(version)
    if have is None:
        if metrics is None:
            mfile = model_dir / "metrics.json"
            metrics = json.loads(mfile.read_text()).get("val", {}) if mfile.is_file() else {}
            metrics = {k: v for k, v in metrics.items() if k in _KEPT_METRICS}
        try:
            store.register_model(version, kind=kind, path=path, metrics=metrics, parent=parent, actor=actor,
                                 part_type=part_type)
        except ValueError:
            if store.get_model(version) is None:  # not the race with another replica: a real error
                raise
    elif model_store and model_store.is_local(have.path):
        store.move_model(version, path, actor=actor)  # one registry for every host: no host-local paths left
    if promote_if_first and store.champion(kind, part_type) is None:
        try:
            store.promote(version, actor=actor)
        except ValueError:  # another replica promoted it first
            pass
    return version
