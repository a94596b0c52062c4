"""Label-free views of die-code maps for self-supervised pretraining (`adrcs pretrain`).

Every op works on a batch of uint8 die-code maps (N, S, S) (0 off-wafer, 1 good, 2 failing) on the batch's
device and returns uint8 codes, so the views are one-hot encoded like any training batch afterwards. None of
them invents a code that a wafer map cannot hold:

- `edge_keeping_crop`: a random resized crop that keeps the wafer's outline. The window is drawn around the
  wafer's bounding box (side `min_side`..`max_side` times the box, independently per axis) so that at most
  `max_cut` of the box is cut off on any side; windows larger than the box zoom out (off-wafer fill). The
  window is resized back to S x S by nearest neighbour. Edge patterns (Edge-Ring, Edge-Loc) stay at the edge
  and a Center stays central, unlike an ImageNet-style crop that may show the inside of the wafer only.
- `die_noise`: per map a random rate; good dies turn failing with probability up to `p_fail` (background
  noise every real wafer has) and failing dies turn good with up to `p_drop` (die-level dropout: a pattern
  with holes is the same pattern). Off-wafer cells never change.
- `random_dihedral` (`transforms.dihedral`): the 8 symmetries of the square; labels never depend on them.

`two_views` chains them: crop, then die noise, then a symmetry, independently for each of the two views.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from adrcs.transforms.dihedral import random_dihedral


@dataclass(frozen=True)
class MapAugment:
    """The strengths of the pretraining views (see the module docstring)."""

    min_side: float = 0.8   # crop window side / wafer bounding-box side, lowest
    max_side: float = 1.15  # ... highest (> 1: zoom out)
    max_cut: float = 0.1    # share of the wafer box a crop may cut off on each side
    p_fail: float = 0.02    # highest per-die probability good -> failing
    p_drop: float = 0.1     # highest per-die probability failing -> good

    def __post_init__(self) -> None:
        if not 0 < self.min_side <= self.max_side:
            raise ValueError(f"crop sides must satisfy 0 < min_side <= max_side (got {self.min_side}, "
                             f"{self.max_side})")
        if not 0 <= self.max_cut < 0.5:
            raise ValueError(f"max_cut must be in [0, 0.5) (got {self.max_cut})")
        if self.min_side < 1 - 2 * self.max_cut:
            raise ValueError(f"min_side {self.min_side} would cut more than max_cut {self.max_cut} per side; "
                             f"use min_side >= {1 - 2 * self.max_cut:g}")
        for name in ("p_fail", "p_drop"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1] (got {getattr(self, name)})")

    def state(self) -> dict[str, float]:
        """Plain data for config files and checkpoints."""
        return asdict(self)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _wafer_box(on: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last index along `axis` (1 rows, 2 columns) of the on-wafer cells of each map (N, S, S);
    the whole side for a map without any."""
    any_on = on.any(dim=3 - axis)  # (N, S): a row (column) holding a die
    s = any_on.shape[1]
    idx = torch.arange(s, device=on.device)
    first = torch.where(any_on, idx, s).amin(dim=1)
    last = torch.where(any_on, idx, -1).amax(dim=1) + 1
    empty = last <= first
    return torch.where(empty, 0, first).float().cpu(), torch.where(empty, s, last).float().cpu()


def _window_index(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """Source index (N, size) of each output cell: centre-aligned sampling of [start, start + length)."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return torch.floor(start[:, None] + centres[None, :] * length[:, None]).long()


def edge_keeping_crop(maps: torch.Tensor, min_side: float = 0.8, max_side: float = 1.15, max_cut: float = 0.1,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Random resized crops of (N, S, S) uint8 maps that cut at most `max_cut` of the wafer off each side."""
    n, h, w = maps.shape
    if n == 0:
        return maps.clone()
    on = maps > 0
    index = []
    for axis, size in ((1, h), (2, w)):
        b0, b1 = _wafer_box(on, axis)
        span = b1 - b0
        length = _uniform(n, min_side, max_side, generator) * span
        margin = max_cut * span
        low = b1 - margin - length   # the window must reach to within `margin` of the far side
        high = b0 + margin           # ... and start within `margin` of the near side
        low, high = torch.minimum(low, high), torch.maximum(low, high)
        start = low + (high - low) * torch.rand(n, generator=generator)
        index.append(_window_index(start, length, size))
    rows, cols = (i.to(maps.device) for i in index)
    inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
    batch = torch.arange(n, device=maps.device)[:, None, None]
    out = maps[batch, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return torch.where(inside, out, torch.zeros((), dtype=maps.dtype, device=maps.device))


def die_noise(maps: torch.Tensor, p_fail: float = 0.02, p_drop: float = 0.1,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip a few dies of (N, S, S) uint8 maps: good -> failing (rate up to `p_fail` per map), failing -> good
    (rate up to `p_drop`). Off-wafer cells stay."""
    n = maps.shape[0]
    if n == 0 or (p_fail <= 0 and p_drop <= 0):
        return maps.clone()
    rate_fail = (torch.rand(n, generator=generator) * p_fail).to(maps.device)[:, None, None]
    rate_drop = (torch.rand(n, generator=generator) * p_drop).to(maps.device)[:, None, None]
    u = torch.rand(maps.shape, generator=generator).to(maps.device)
    out = maps.clone()
    out[(maps == 1) & (u < rate_fail)] = 2
    out[(maps == 2) & (u < rate_drop)] = 1
    return out


def augment_view(maps: torch.Tensor, aug: MapAugment, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of each map: edge-keeping crop, die noise, a random symmetry."""
    x = edge_keeping_crop(maps, aug.min_side, aug.max_side, aug.max_cut, generator)
    x = die_noise(x, aug.p_fail, aug.p_drop, generator)
    return random_dihedral(x, generator)


def two_views(maps: torch.Tensor, aug: MapAugment,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent views of every map of a batch (the positive pairs of contrastive learning)."""
    return augment_view(maps, aug, generator), augment_view(maps, aug, generator)


def die_cutout(maps: torch.Tensor, max_side: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout for die maps: per map one random square (side up to `max_side` of the map, at least one cell) whose
    failing dies turn good. The wafer outline stays (off-wafer cells never change), so the view stays a wafer
    map with part of its pattern erased: the strong view of FixMatch (`engine.fixmatch`)."""
    n, h, w = maps.shape
    if n == 0 or max_side <= 0:
        return maps.clone()
    side = (torch.rand(n, generator=generator) * max_side * min(h, w)).clamp(min=1).long()
    r0 = (torch.rand(n, generator=generator) * (h - side + 1)).long()
    c0 = (torch.rand(n, generator=generator) * (w - side + 1)).long()
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    in_r = (rows >= r0[:, None]) & (rows < (r0 + side)[:, None])
    in_c = (cols >= c0[:, None]) & (cols < (c0 + side)[:, None])
    box = (in_r[:, :, None] & in_c[:, None, :]).to(maps.device)
    out = maps.clone()
    out[box & (maps == 2)] = 1
    return out


def strong_view(maps: torch.Tensor, p_fail: float = 0.02, p_drop: float = 0.1, cutout: float = 0.25,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """FixMatch's strong view of die maps: die noise, cutout, a random symmetry (no crop: the weak view's
    geometry is kept up to symmetry, so the pseudo-label of the weak view stays right)."""
    x = die_noise(maps, p_fail, p_drop, generator)
    x = die_cutout(x, cutout, generator)
    return random_dihedral(x, generator)
