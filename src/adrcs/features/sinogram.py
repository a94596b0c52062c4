"""The sinogram feature step of the second design: maps -> SBAE codes -> Radon -> selected 1-D features.

`SinogramFeatures.fit(maps, y)` trains the encoder (SBAE, plain CAE, or none), builds the flattened
sinogram pool, standardises it with training statistics and runs the feature-selection search;
`transform(maps)` turns resized die-code maps (N, S, S) into the selected features (N, L) a 1-D
classifier reads. `state()` / `from_state()` put it into a checkpoint (weights-only loadable), so a
saved pipeline predicts from raw maps. Both fitted stages can be cached (see `features.cache`).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from adrcs.features.radon import RadonFeatures
from adrcs.features.sbae import SBAEEncoder, SparseConvAutoencoder
from adrcs.transforms.one_hot import one_hot_maps

Printer = Callable[[str], None]


def knn_classes(y: np.ndarray) -> np.ndarray:
    """Class ids for the KNN fitness: labels as they are, or one id per label combination (multi-label)."""
    y = np.asarray(y)
    if y.ndim == 1:
        return y.astype(np.int64)
    return np.unique(np.clip(y, 0, None), axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def capped_subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of at most n / n_classes samples per class (all of a rarer class), in order.

    The search's KNN accuracy then weighs rare classes about as much as common ones (on an
    imbalanced set the majority class would otherwise decide the fitness), at a bounded cost."""
    if n <= 0:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    cap = max(1, n // len(classes))
    idx = [rng.choice(np.flatnonzero(y == c), size=min(int(k), cap), replace=False) for c, k in zip(classes, counts)]
    return np.sort(np.concatenate(idx))


class SinogramFeatures:
    """Fit/transform step: uint8 die-code maps (N, S, S) -> standardised, selected sinogram features.

    encoder: "sbae" (KL-sparse autoencoder), "cae" (same net, no sparsity term) or "none" (Radon of
    the one-hot map itself: the ablation without SBAE). selector: a name from
    `features.selectors` (erd, rd, ga, pso, gwo, sca, eo) or "none" (keep the whole pool)."""

    def __init__(self, encoder: str = "sbae", sbae_args: dict[str, Any] | None = None, radon_angles: int = 0,
                 selector: str = "erd", selector_args: dict[str, Any] | None = None, select_samples: int = 3000,
                 seed: int = 0, device: str = "cpu") -> None:
        if encoder not in ("sbae", "cae", "none"):
            raise ValueError(f"encoder must be sbae, cae or none (got {encoder!r})")
        self.encoder, self.sbae_args = encoder, dict(sbae_args or {})
        self.radon_angles, self.selector = int(radon_angles), selector
        self.selector_args = dict(selector_args or {})
        self.select_samples, self.seed, self.device = int(select_samples), int(seed), device
        self.sbae_: SBAEEncoder | None = None
        self.info_: dict[str, Any] = {}

    # -- the two fitted stages ------------------------------------------------------------------
    def fit_encoder(self, maps: np.ndarray, say: Printer = print, progress: bool = False) -> "SinogramFeatures":
        """Stage 1: train the SBAE / CAE on the training maps (nothing to fit for encoder=none)."""
        self.size_ = int(maps.shape[-1])
        if self.encoder != "none":
            args = {"seed": self.seed, **self.sbae_args, "sparse": self.encoder == "sbae"}
            t0 = time.time()
            self.sbae_ = SBAEEncoder(device=self.device, **args).fit(maps, say=say, progress=progress)
            self.info_["encoder_seconds"] = round(time.time() - t0, 1)
            self.info_["sbae_maps"] = int(len(maps))
        return self

    def pool(self, maps: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The full, unstandardised sinogram pool (N, C * S' * A) of maps (N, S, S)."""
        radon = RadonFeatures(angles=self.radon_angles or None)
        out = []
        for i in range(0, len(maps), batch_size):
            chunk = np.ascontiguousarray(maps[i:i + batch_size])
            if self.sbae_ is not None:
                codes = self.sbae_.transform(chunk)
            else:
                codes = one_hot_maps(torch.from_numpy(chunk)).numpy()
            out.append(radon.transform(codes))
        return np.concatenate(out) if out else np.zeros((0, self.n_pool_), np.float32)

    def fit_selection(self, pool: np.ndarray, y: np.ndarray, say: Printer = print) -> "SinogramFeatures":
        """Stage 2: standardise the training pool and search the feature subset on (a capped sample of) it."""
        from adrcs.features.selectors import MetaheuristicSelector

        self.n_pool_ = pool.shape[1]
        self.mean_ = pool.mean(axis=0).astype(np.float32)
        self.std_ = np.maximum(pool.std(axis=0), 1e-6).astype(np.float32)
        if self.selector == "none":
            self.support_ = np.ones(self.n_pool_, bool)
            self.history_: list[float] = []
            return self
        cls = knn_classes(y)
        idx = capped_subsample(cls, self.select_samples, self.seed)
        z = (pool[idx] - self.mean_) / self.std_
        say(f"features: {self.selector} search over {self.n_pool_} sinogram features on {len(idx)} training maps")
        t0 = time.time()
        sel = MetaheuristicSelector(self.selector, seed=self.seed, **self.selector_args).fit(z, cls[idx])
        self.support_ = np.asarray(sel.support_, bool)
        self.history_ = [float(v) for v in sel.history_]
        self.info_.update(search_seconds=round(time.time() - t0, 1), search_samples=int(len(idx)),
                          fitness=float(sel.fitness_), initial_fitness=float(sel.initial_fitness_),
                          selected_accuracy=float(sel.accuracy_) if hasattr(sel, "accuracy_") else None)
        return self

    def fit(self, maps: np.ndarray, y: np.ndarray, say: Printer = print, progress: bool = False) -> "SinogramFeatures":
        self.fit_encoder(maps, say=say, progress=progress)
        return self.fit_selection(self.pool(maps), y, say=say)

    # -- use --------------------------------------------------------------------------------------
    @property
    def n_features_out(self) -> int:
        return int(self.support_.sum())

    def standardize_select(self, pool: np.ndarray) -> np.ndarray:
        return ((pool[:, self.support_] - self.mean_[self.support_]) / self.std_[self.support_]).astype(np.float32)

    def transform(self, maps: np.ndarray) -> np.ndarray:
        """Maps (N, S, S) at the fitted size -> selected standardised features (N, L) float32."""
        if maps.ndim != 3 or maps.shape[-1] != self.size_:
            raise ValueError(f"expected maps (N, {self.size_}, {self.size_}), got {maps.shape}")
        return self.standardize_select(self.pool(maps))

    def summary(self) -> dict[str, Any]:
        """What the step is and what it found (for metrics.json)."""
        return {"encoder": self.encoder, "input_size": self.size_, "pool_size": int(self.n_pool_),
                "selected": self.n_features_out, "selected_share": round(self.n_features_out / self.n_pool_, 5),
                "selector": self.selector, **self.info_}

    # -- checkpoint ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain tensors and values (loadable with `torch.load(weights_only=True)`)."""
        net = self.sbae_.net_ if self.sbae_ is not None else None
        return {
            "encoder": self.encoder, "sbae_args": self.sbae_args, "radon_angles": self.radon_angles,
            "selector": self.selector, "selector_args": self.selector_args, "select_samples": self.select_samples,
            "seed": self.seed, "size": self.size_, "n_pool": int(self.n_pool_),
            "sbae_state": {k: v.cpu() for k, v in net.state_dict().items()} if net is not None else None,
            "sbae_shape": [self.sbae_.hidden, self.sbae_.channels] if self.sbae_ is not None else None,
            "mean": torch.from_numpy(self.mean_), "std": torch.from_numpy(self.std_),
            "support": torch.from_numpy(self.support_), "history": list(self.history_), "info": dict(self.info_),
        }

    @classmethod
    def from_state(cls, st: dict[str, Any], device: str = "cpu") -> "SinogramFeatures":
        self = cls(encoder=st["encoder"], sbae_args=st["sbae_args"], radon_angles=st["radon_angles"],
                   selector=st["selector"], selector_args=st["selector_args"], select_samples=st["select_samples"],
                   seed=st["seed"], device=device)
        self.size_, self.n_pool_ = int(st["size"]), int(st["n_pool"])
        if st["sbae_state"] is not None:
            self.set_encoder_state(st["sbae_state"], st["sbae_shape"])
        self.mean_, self.std_ = st["mean"].numpy(), st["std"].numpy()
        self.support_ = st["support"].numpy().astype(bool)
        self.history_, self.info_ = list(st["history"]), dict(st["info"])
        return self

    def encoder_state(self) -> dict[str, Any]:
        """Stage-1 state alone (for the cache)."""
        net = self.sbae_.net_ if self.sbae_ is not None else None
        weights = None if net is None else {k: v.cpu() for k, v in net.state_dict().items()}
        return {"size": self.size_, "sbae_state": weights,
                "sbae_shape": None if net is None else [self.sbae_.hidden, self.sbae_.channels],
                "sbae_history": [] if self.sbae_ is None else self.sbae_.history_, "info": dict(self.info_)}

    def set_encoder_state(self, sbae_state: dict[str, torch.Tensor], shape: list[int]) -> None:
        hidden, channels = shape
        enc = SBAEEncoder(hidden=hidden, channels=channels, device=self.device)
        enc.net_ = SparseConvAutoencoder(hidden, channels).to(self.device)
        enc.net_.load_state_dict(sbae_state)
        enc.net_.eval()
        self.sbae_ = enc
