"""Cache of the fitted sinogram stages, so changing only the classifier refits nothing.

Stage 1 (encoder) is keyed by the training maps' bytes and the encoder settings; stage 2 (the
feature search) by stage 1's key, the labels and the Radon/selector settings. Entries are
`torch.save` files named by a SHA-256 of those inputs under `$ADRCS_CACHE_DIR` (default
`~/.cache/adrcs/features`), or under the folder given by the `feature_cache` config key.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adrcs.features.sinogram import SinogramFeatures

CACHE_VERSION = "sinogram-cache/1"
Printer = Callable[[str], None]


def default_cache_dir() -> Path:
    env = os.environ.get("ADRCS_CACHE_DIR")
    return Path(env) / "features" if env else Path.home() / ".cache" / "adrcs" / "features"


def digest(*parts: Any) -> str:
    """SHA-256 over arrays (their dtype, shape and bytes) and JSON-able values."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


class FeatureCache:
    """Get/put fitted stages by key; `root=None` disables caching."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = None if root is None else Path(root)

    @classmethod
    def from_setting(cls, setting: str) -> "FeatureCache":
        """Config value -> cache: "auto" (default folder), "none" / "" (off) or a folder path."""
        if setting in ("none", "", None):
            return cls(None)
        return cls(default_cache_dir() if setting == "auto" else setting)

    def _path(self, stage: str, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{stage}-{key}.pt"

    def get(self, stage: str, key: str) -> dict[str, Any] | None:
        p = self._path(stage, key)
        if p is None or not p.is_file():
            return None
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a broken entry is refitted, not fatal
            return None

    def put(self, stage: str, key: str, value: dict[str, Any]) -> None:
        p = self._path(stage, key)
        if p is None:
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        torch.save(value, tmp)
        tmp.replace(p)  # atomic: a reader never sees half a file


def fit_with_cache(feats: SinogramFeatures, maps: np.ndarray, y: np.ndarray, cache: FeatureCache,
                   say: Printer = print, progress: bool = False,
                   encoder_maps: np.ndarray | None = None) -> dict[str, bool]:
    """Fit both stages of `feats` on training maps/labels, reusing cached stages. Returns the cache hits.
    `encoder_maps`: more maps (no labels) the encoder learns from besides the training maps."""
    fit_maps = maps if encoder_maps is None or not len(encoder_maps) else np.concatenate([maps, encoder_maps])
    k1 = digest(fit_maps, feats.encoder, feats.sbae_args if feats.encoder != "none" else {}, feats.seed)
    hit1 = cache.get("encoder", k1)
    if hit1 is not None:
        feats.size_ = int(hit1["size"])
        if hit1["sbae_state"] is not None:
            feats.set_encoder_state(hit1["sbae_state"], hit1["sbae_shape"])
            feats.sbae_.history_ = list(hit1["sbae_history"])
        feats.info_.update(hit1["info"])
        say(f"features: encoder ({feats.encoder}) from the cache")
    else:
        feats.fit_encoder(fit_maps, say=say, progress=progress)
        cache.put("encoder", k1, feats.encoder_state())
    k2 = digest(k1, np.asarray(y), feats.radon_angles, feats.selector, feats.selector_args,
                feats.select_samples, feats.seed)
    hit2 = cache.get("selection", k2)
    if hit2 is not None:
        feats.n_pool_ = int(hit2["n_pool"])
        feats.mean_, feats.std_ = hit2["mean"].numpy(), hit2["std"].numpy()
        feats.support_ = hit2["support"].numpy().astype(bool)
        feats.history_ = list(hit2["history"])
        feats.info_.update(hit2["info"])
        say(f"features: {feats.selector} selection from the cache ({feats.n_features_out} of {feats.n_pool_})")
    else:
        feats.fit_selection(feats.pool(maps), y, say=say)
        cache.put("selection", k2, {"n_pool": feats.n_pool_, "mean": torch.from_numpy(feats.mean_),
                                    "std": torch.from_numpy(feats.std_), "support": torch.from_numpy(feats.support_),
                                    "history": feats.history_, "info": dict(feats.info_)})
    return {"encoder": hit1 is not None, "selection": hit2 is not None}

