"""SBAE: the sparsity-boosted convolutional autoencoder of the sinogram paper, as a fit/transform step.

Encoder: 3x3 conv (c1) + ReLU, 3x3 conv (c) + 2x2 max-pool + sigmoid: the bottleneck is an
m/2 x n/2 x c encoded map whose units are in (0, 1). Decoder: 2x up-sampling, 3x3 conv (c1) +
ReLU, 3x3 conv to 3 channels + sigmoid. Loss on one-hot maps:

    MSE(x, x_hat) + weight_decay * sum ||W||^2 + gamma * sum_j KL(p || p_hat_j)

with p_hat_j the mean activation of bottleneck channel j over the batch and positions. With
`sparse=False` the same net trains without the KL term: the plain CAE of the paper's ablation.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adrcs.engine.progress import progress_steps
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.one_hot import one_hot_maps


def kl_sparsity(code: torch.Tensor, p: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(p || p_hat_j), p_hat_j = mean activation of channel j of `code` (N, C, H, W) in (0, 1)."""
    p_hat = code.mean(dim=(0, 2, 3)).clamp(eps, 1 - eps)
    return (p * torch.log(p / p_hat) + (1 - p) * torch.log((1 - p) / (1 - p_hat))).sum()


class SparseConvAutoencoder(nn.Module):
    """The SBAE network; `encode` gives the (N, c, S/2, S/2) bottleneck in (0, 1)."""

    def __init__(self, hidden: int = 32, channels: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 3, padding=1), nn.MaxPool2d(2), nn.Sigmoid())
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                     nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, 3, 3, padding=1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code


def sbae_loss(net: SparseConvAutoencoder, x: torch.Tensor, sparsity: float, gamma: float,
              weight_decay: float) -> dict[str, torch.Tensor]:
    """The loss terms (`mse`, `l2`, `kl`) and their weighted `total` for one batch of one-hot maps."""
    recon, code = net(x)
    mse = F.mse_loss(recon, x)
    l2 = sum((w ** 2).sum() for name, w in net.named_parameters() if name.endswith("weight"))
    kl = kl_sparsity(code, sparsity) if gamma > 0 else torch.zeros((), device=x.device)
    return {"mse": mse, "l2": l2, "kl": kl, "total": mse + weight_decay * l2 + gamma * kl}


class SBAEEncoder:
    """scikit-learn-style step: `fit(maps)` trains the SBAE (or plain CAE with `sparse=False`) on
    uint8 die-code maps (N, S, S); `transform(maps)` returns the encoded maps (N, c, S/2, S/2)."""

    def __init__(self, channels: int = 8, hidden: int = 32, sparse: bool = True, sparsity: float = 0.05,
                 gamma: float = 0.1, weight_decay: float = 1e-5, steps: int = 500, batch_size: int = 64,
                 lr: float = 1e-3, seed: int = 0, device: str = "cpu") -> None:
        self.channels, self.hidden, self.sparse, self.sparsity = channels, hidden, sparse, sparsity
        self.gamma, self.weight_decay, self.steps, self.batch_size = gamma, weight_decay, steps, batch_size
        self.lr, self.seed, self.device = lr, seed, device
        self.history_: list[dict[str, float]] = []

    def fit(self, maps: np.ndarray, say: Callable[[str], None] = print, progress: bool = False) -> "SBAEEncoder":
        if maps.ndim != 3 or maps.shape[1] % 2 or maps.shape[2] % 2:
            raise ValueError(f"expected uint8 maps (N, S, S) with even sides, got shape {maps.shape}")
        torch.manual_seed(self.seed)
        self.net_ = SparseConvAutoencoder(self.hidden, self.channels).to(self.device)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(self.seed)
        x_all = torch.from_numpy(np.ascontiguousarray(maps))
        gamma = self.gamma if self.sparse else 0.0
        self.net_.train()
        with progress_steps(self.steps, "sbae: fitting" if self.sparse else "cae: fitting", say, progress) as step:
            for it in range(self.steps):
                idx = torch.randint(0, len(x_all), (min(self.batch_size, len(x_all)),), generator=g)
                x = one_hot_maps(random_dihedral(x_all[idx], g).to(self.device))
                terms = sbae_loss(self.net_, x, self.sparsity, gamma, self.weight_decay)
                opt.zero_grad(set_to_none=True)
                terms["total"].backward()
                opt.step()
                if it % 10 == 0 or it == self.steps - 1:
                    self.history_.append({"step": it + 1, **{k: float(v.detach()) for k, v in terms.items()}})
                step(f"loss {terms['total'].item():.4f}")
        self.net_.eval()
        return self

    @torch.inference_mode()
    def transform(self, maps: np.ndarray, batch_size: int = 512) -> np.ndarray:
        out = [self.net_.encode(one_hot_maps(torch.from_numpy(np.ascontiguousarray(maps[i:i + batch_size]))
                                             .to(self.device))).cpu()
               for i in range(0, len(maps), batch_size)]
        return torch.cat(out).numpy()

    def fit_transform(self, maps: np.ndarray, **kw) -> np.ndarray:
        return self.fit(maps, **kw).transform(maps)
