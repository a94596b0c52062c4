"""`cae`: the convolutional-autoencoder synthesizer of the wafer-map paper.

Encoder: 3x3 conv (64 filters) + ReLU + 2x2 max-pool. Gaussian noise (mean 0, sigma
`noise_std` = 0.1) is added to the bottleneck code. Decoder: 3x3 transposed conv (64) + ReLU,
2x nearest up-sampling, 3x3 transposed conv to 3 channels + sigmoid. Loss: MSE between the
output and the one-hot input.

New maps of a class: take that class's training maps (with a random rot90/flip each), encode,
add bottleneck noise (`sample_noise`), decode, and snap back to die codes: the source map's
off-wafer area is kept and every on-wafer die becomes good or failing by the larger of the two
decoded channels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adrcs.engine.progress import progress_steps
from adrcs.synth.base import Printer, Synthesizer, register_synthesizer
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.one_hot import one_hot_maps


class ConvAutoencoder(nn.Module):
    """One-layer conv encoder / two-layer transposed-conv decoder with a noisy bottleneck."""

    def __init__(self, channels: int = 64, noise_std: float = 0.1) -> None:
        super().__init__()
        self.noise_std = noise_std
        self.encoder = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ConvTranspose2d(channels, 3, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor, noise_std: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, S, S) one-hot -> (N, 3, S, S) in [0, 1]; noise is added to the code."""
        z = self.encoder(x)
        std = self.noise_std if noise_std is None else noise_std
        if std > 0:
            noise = torch.randn(z.shape, generator=generator, device="cpu").to(z.device)
            z = z + std * noise
        return self.decoder(z)


def snap_to_die_codes(decoded: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Decoded (N, 3, S, S) + source die codes (N, S, S) -> die codes keeping the source's wafer outline."""
    fail = decoded[:, 2] > decoded[:, 1]
    codes = torch.where(fail, 2, 1).to(torch.uint8)
    return torch.where(source == 0, torch.zeros_like(codes), codes)


@register_synthesizer
class CAESynthesizer(Synthesizer):
    """Convolutional autoencoder with a noisy bottleneck (one network for all classes)."""

    method = "cae"
    defaults = {"channels": 64, "noise_std": 0.1, "sample_noise": 0.1, "steps": 500, "batch_size": 64,
                "lr": 1.0e-3}

    def _build(self) -> dict[str, nn.Module]:
        return {"autoencoder": ConvAutoencoder(int(self.args["channels"]), float(self.args["noise_std"]))}

    def _fit(self, say: Printer, progress: bool) -> None:
        net, dev = self.nets["autoencoder"], self.device
        maps = torch.from_numpy(self.train_maps)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.args["lr"]))
        g = torch.Generator().manual_seed(self.seed)
        steps, bs = int(self.args["steps"]), int(self.args["batch_size"])
        net.train()
        running = None
        with progress_steps(steps, "cae: fitting autoencoder", say, progress) as step:
            for it in range(steps):
                idx = torch.randint(0, len(maps), (bs,), generator=g)
                x = one_hot_maps(random_dihedral(maps[idx], g).to(dev))
                loss = F.mse_loss(net(x), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
                if it % 10 == 0 or it == steps - 1:
                    self.history.append({"step": it + 1, "mse": float(loss.item())})
                step(f"mse {running:.5f}")

    def reconstruction_loss(self, maps: np.ndarray) -> float:
        """Mean MSE of the noiseless reconstruction of uint8 die-code maps (N, S, S)."""
        net = self.nets["autoencoder"].eval()
        with torch.inference_mode():
            x = one_hot_maps(torch.from_numpy(maps).to(self.device))
            return float(F.mse_loss(net(x, noise_std=0.0), x))

    def _sample(self, class_index: int, n: int, generator: torch.Generator) -> np.ndarray:
        net = self.nets["autoencoder"].eval()
        pool = np.flatnonzero(self.train_labels == class_index)
        pick = pool[torch.randint(0, len(pool), (n,), generator=generator).numpy()]
        out = []
        for i in range(0, n, 512):
            src = random_dihedral(torch.from_numpy(self.train_maps[pick[i:i + 512]]), generator)
            dec = net(one_hot_maps(src.to(self.device)), noise_std=float(self.args["sample_noise"]),
                      generator=generator)
            out.append(snap_to_die_codes(dec.cpu(), src))
        return torch.cat(out).numpy()
