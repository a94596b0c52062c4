"""Preprocess a WaferMapSet once into tensors, and serve them in batches."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.transforms.resize import resize_stack


class WaferTensors(Dataset):
    """Maps resized to S x S as one uint8 tensor (N, S, S) with their label tensor.

    One-hot encoding and augmentation happen per batch inside the model step, so an epoch does
    no per-map Python work beyond indexing. `__getitems__` fetches a whole batch at once.
    """

    def __init__(self, ds: WaferMapSet, size: int, resize: str = "nearest") -> None:
        self.maps = (torch.from_numpy(resize_stack(ds.maps, size, resize)) if len(ds)
                     else torch.zeros(0, size, size, dtype=torch.uint8))
        labels = ds.labels
        self.labels = torch.from_numpy(labels.astype(np.float32 if ds.multilabel else np.int64))

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.maps[i], self.labels[i]

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(idx)
        return self.maps[t], self.labels[t]


class FeatureTensors(WaferTensors):
    """1-D feature vectors (N, L) float32 with their labels: the sinogram pipeline's training data."""

    def __init__(self, features: np.ndarray, ds: WaferMapSet) -> None:
        self.maps = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.labels = torch.from_numpy(ds.labels.astype(np.float32 if ds.multilabel else np.int64))


class MapTensors(WaferTensors):
    """Maps without labels (a list or array of die-code maps) resized to S x S; the "label" is the row number."""

    def __init__(self, maps, size: int, resize: str = "nearest") -> None:
        self.maps = (torch.from_numpy(resize_stack(maps, size, resize)) if len(maps)
                     else torch.zeros(0, size, size, dtype=torch.uint8))
        self.labels = torch.arange(len(self.maps), dtype=torch.int64)


def unlabeled_loader(data: WaferTensors, batch_size: int, n_batches: int, seed: int = 0) -> DataLoader:
    """`n_batches` batches of `batch_size` maps drawn at random (with replacement) from `data`: the unlabelled
    half of a semi-supervised step, as many batches as the labelled loader has."""
    g = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(data, replacement=True, num_samples=max(1, n_batches) * batch_size, generator=g)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=True, collate_fn=_identity_collate)


def _identity_collate(batch):
    return batch


def class_counts(ds: WaferMapSet) -> np.ndarray:
    """Training maps per class (single-label) or positives per label (multi-label)."""
    if ds.multilabel:
        return np.clip(ds.labels, 0, None).sum(axis=0).astype(np.int64)
    return np.bincount(ds.labels[ds.labels >= 0], minlength=len(ds.class_names))


def class_weights(counts: np.ndarray, mode: str, power: float = 0.5) -> np.ndarray | None:
    """Loss weights per class, count ** -p with p = 1 (`weights`), 0.5 (`sqrt_weights`) or
    `power` (`power`), normalised to mean 1 over the classes present; None for other modes."""
    exponent = {"weights": 1.0, "sqrt_weights": 0.5, "power": float(power)}.get(mode)
    if exponent is None:
        return None
    c = np.maximum(counts.astype(np.float64), 1.0)
    w = c ** -exponent
    present = counts > 0
    w = w / w[present].mean()
    return w.astype(np.float32)


def make_loader(data: WaferTensors, batch_size: int, *, train: bool, sampler_weights: np.ndarray | None = None,
                num_workers: int = 0, seed: int = 0, epoch_size: int = 0) -> DataLoader:
    """A DataLoader over preprocessed tensors; balanced sampling when `sampler_weights` is given.

    `epoch_size` > 0 draws that many maps per training epoch (reshuffled passes), so small and
    large training sets can get the same number of optimizer steps."""
    sampler = None
    n_epoch = int(epoch_size) or len(data)
    if train:
        g = torch.Generator().manual_seed(seed)
        if sampler_weights is not None:
            sampler = WeightedRandomSampler(torch.as_tensor(sampler_weights, dtype=torch.double), n_epoch,
                                            replacement=True, generator=g)
        elif epoch_size:
            sampler = RandomSampler(data, replacement=False, num_samples=n_epoch, generator=g)
    return DataLoader(
        data, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
        drop_last=train and n_epoch > batch_size, num_workers=num_workers, collate_fn=_identity_collate,
        persistent_workers=num_workers > 0,
    )


def sampler_weights_for(ds: WaferMapSet) -> np.ndarray:
    """Per-map weights giving every class the same expected share of a balanced epoch."""
    counts = np.maximum(class_counts(ds), 1)
    if ds.multilabel:  # weight a map by its rarest label (all-zero rows by the mean)
        inv = 1.0 / counts
        lab = np.clip(ds.labels, 0, None)
        w = (lab * inv).max(axis=1)
        w[w == 0] = inv.mean()
        return w
    return 1.0 / counts[ds.labels]
